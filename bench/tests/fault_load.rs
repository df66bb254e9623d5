//! The fault-load test, short: well-behaved traffic beside a misbehaving plugin over loopback
//! HTTP, bounded in requests. It prints the report (`cargo test -p ucms-bench -- --nocapture`)
//! and fails if any well-behaved request failed, if acknowledged data is missing, or if the
//! misbehaving requests weren't each answered by the limit they broke.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn well_behaved_traffic_survives_a_misbehaving_plugin() {
    let dir = tempfile::tempdir().unwrap();
    let options = ucms_bench::faultload::Options::short();
    let report = ucms_bench::faultload::run(dir.path(), &options)
        .await
        .expect("the fault-load run completes");
    report.print();
    assert!(
        report.good_failures.is_empty(),
        "{:#?}",
        report.good_failures
    );
    assert_eq!(
        report.notes_found, report.notes_acknowledged,
        "no note lost"
    );
    assert_eq!(
        report.counter_found, report.counter_acknowledged,
        "no counter increment lost"
    );
    assert_eq!(
        report.baseline.requests + report.under_fault.requests,
        2 * (options.good_clients * options.good_requests) as u64
    );
    // The bad traffic really ran into the limits, each answered with its own code.
    let answered = |code: &str| report.bad_answers.keys().any(|a| a.ends_with(code));
    // The endless loop is stopped by its CPU budget, or by the wall clock when the machine is
    // too busy to give it the CPU.
    assert!(
        answered("plugin_cpu_limit") || answered("plugin_timeout"),
        "{:?}",
        report.bad_answers
    );
    for code in [
        "plugin_memory_limit",
        "plugin_panicked",
        "plugin_response_too_large",
        "egress_denied",
        "plugin_stack_overflow",
    ] {
        assert!(
            answered(code),
            "no misbehaving request hit {code}: {:?}",
            report.bad_answers
        );
    }
    assert!(
        !report
            .bad_answers
            .keys()
            .any(|a| a.contains("connection error")),
        "the host never dropped a connection: {:?}",
        report.bad_answers
    );
    assert_eq!(report.misbehave_state, "enabled");
}
