//! The blob store's suite, run over every cell of the matrix: metadata on SQLite and PostgreSQL ×
//! objects in files and in S3 (a real S3-compatible server; see `support`).

mod cases;
mod s3_server;
mod support;

use support::{DbKind, Env, StoreKind};

/// Each case runs once per (database, backend) pair, as `<db>_<backend>::<case>`.
macro_rules! matrix {
    ($($case:ident),* $(,)?) => {
        matrix!(@cell sqlite_files, DbKind::Sqlite, StoreKind::Files, $($case),*);
        matrix!(@cell sqlite_s3, DbKind::Sqlite, StoreKind::S3, $($case),*);
        matrix!(@cell postgres_files, DbKind::Postgres, StoreKind::Files, $($case),*);
        matrix!(@cell postgres_s3, DbKind::Postgres, StoreKind::S3, $($case),*);
    };
    (@cell $cell:ident, $db:expr, $store:expr, $($case:ident),*) => {
        mod $cell {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let Some(env) = Env::open($db, $store).await else { return };
                    crate::cases::$case(&env).await;
                    env.close().await;
                }
            )*
        }
    };
}

matrix!(
    streamed_put_get_and_ranges,
    head_delete_and_missing,
    empty_blob,
    list_by_prefix_with_pagination,
    quota_refusal_leaves_nothing_behind,
    size_limit_leaves_nothing_behind,
    replace_swaps_atomically,
    abort_and_drop_leave_nothing,
    hostile_keys,
    concurrent_writers_same_key,
    drop_plugin_removes_everything,
    invalid_inputs,
    control_characters_in_list_prefix_and_cursor_found_by_the_host_fuzzer,
);
