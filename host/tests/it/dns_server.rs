//! A DNS server on loopback for the egress tests: it answers `A` queries from a script and
//! counts them, so a test can make a name resolve to an internal address, or change its answer
//! between two lookups (DNS rebinding).

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use hickory_proto::op::{Message, OpCode, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{RData, Record, RecordType};

/// A running scripted DNS server.
pub struct TestDns {
    pub addr: SocketAddr,
    queries: Arc<Mutex<HashMap<String, usize>>>,
}

impl TestDns {
    /// Serves `answers`: the n-th `A` query for a name gets its n-th address (the last one
    /// repeats), with a TTL of 0. `AAAA` queries get no records; unknown names NXDOMAIN.
    pub async fn start(answers: &[(&str, &[Ipv4Addr])]) -> Self {
        let answers: HashMap<String, Vec<Ipv4Addr>> = answers
            .iter()
            .map(|(name, ips)| (name.to_ascii_lowercase(), ips.to_vec()))
            .collect();
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        let queries: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
        let counted = queries.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            loop {
                let Ok((len, peer)) = socket.recv_from(&mut buf).await else {
                    return;
                };
                let Ok(request) = Message::from_vec(&buf[..len]) else {
                    continue;
                };
                let Some(query) = request.queries.first().cloned() else {
                    continue;
                };
                let name = query
                    .name()
                    .to_ascii()
                    .trim_end_matches('.')
                    .to_ascii_lowercase();
                let mut response = Message::response(request.metadata.id, OpCode::Query);
                response.metadata.recursion_desired = request.metadata.recursion_desired;
                response.metadata.recursion_available = true;
                response.add_query(query.clone());
                match answers.get(&name) {
                    None => response.metadata.response_code = ResponseCode::NXDomain,
                    Some(ips) if query.query_type() == RecordType::A => {
                        let n = {
                            let mut q = counted.lock().unwrap();
                            let n = q.entry(name.clone()).or_insert(0);
                            *n += 1;
                            *n
                        };
                        let ip = ips[(n - 1).min(ips.len() - 1)];
                        response.add_answer(Record::from_rdata(
                            query.name().clone(),
                            0,
                            RData::A(A(ip)),
                        ));
                    }
                    Some(_) => {}
                }
                if let Ok(bytes) = response.to_vec() {
                    let _ = socket.send_to(&bytes, peer).await;
                }
            }
        });
        Self { addr, queries }
    }

    /// How many `A` queries for `name` were answered.
    pub fn a_queries(&self, name: &str) -> usize {
        self.queries.lock().unwrap().get(name).copied().unwrap_or(0)
    }
}
