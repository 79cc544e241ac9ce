//! The KV store's optimistic concurrency on a real three-node cluster: two
//! store handles (two replicas) commit changes computed on the same state;
//! the second is refused whole (nothing of it stored, its nonce freed),
//! catches up, and nonces are shared between the handles.

mod cluster_bed;
mod common;

use std::time::Duration;

use account_server::store::{
    AuditEntry, Change, DeployRecord, DeployState, KvConfig, KvStore, NonceUse, Store, StoreError,
};
use cluster_bed::Cluster;

fn deploy(id: &str) -> DeployRecord {
    DeployRecord {
        id: id.into(),
        signing_key: "AKEY".into(),
        sealed_seed: "00".into(),
        state: DeployState::Open,
        opened_at: 1,
        opened_by: "UCI".into(),
        activated_at: None,
        retire_at: None,
        ended_at: None,
    }
}

fn change(id: &str, base: u64, nonce: &str) -> Change {
    Change {
        nonce: Some(NonceUse {
            caller: "UCI".into(),
            nonce: nonce.into(),
            ts: 100,
            forget_before: 0,
        }),
        deploys: vec![deploy(id)],
        audit: vec![AuditEntry {
            seq: 0,
            at: 1,
            caller: "UCI".into(),
            action: "open".into(),
            deploy: Some(id.into()),
            subjects: vec![],
            grants: vec![],
        }],
        base,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_computed_on_stale_state_is_refused_whole() {
    let cluster = Cluster::start();
    cluster.wait_jetstream().await;
    let config = KvConfig {
        servers: (0..3).map(|i| cluster.url(i)).collect(),
        creds_file: cluster.kv_creds.clone(),
        bucket: "occ".into(),
        replicas: 3,
    };
    let one = KvStore::connect(&config, Duration::from_secs(60))
        .await
        .unwrap();
    let two = KvStore::connect(&config, Duration::from_secs(60))
        .await
        .unwrap();
    let (a, b) = tokio::task::spawn_blocking(move || {
        let base = one.load().unwrap().position;
        assert_eq!(base, 0);
        let p1 = one.commit_from(&change("x", base, "n1")).unwrap();
        assert!(p1 > base);
        // Replica two computed its change on the same state: refused.
        assert!(matches!(
            two.commit_from(&change("y", base, "n2")),
            Err(StoreError::Conflict)
        ));
        let snap = two.load().unwrap();
        assert!(snap.deploys.contains_key("x") && !snap.deploys.contains_key("y"));
        assert_eq!(snap.position, p1);
        assert!(
            !two.nonce_seen("UCI", "n2").unwrap(),
            "the refused change's nonce is freed"
        );
        let (caught, to) = two.changes_after(base).unwrap().expect("news");
        assert_eq!(caught.deploys.len(), 1);
        assert_eq!(to, p1);
        assert!(two.changes_after(p1).unwrap().is_none());
        // Re-applied on the new state, it goes through.
        let p2 = two.commit_from(&change("y", p1, "n2")).unwrap();
        assert!(p2 > p1);
        // A nonce seen by one replica is refused by the other.
        assert!(
            !two.remember_nonce(&NonceUse {
                caller: "UCI".into(),
                nonce: "n1".into(),
                ts: 100,
                forget_before: 0,
            })
            .unwrap()
        );
        assert!(matches!(
            one.commit_from(&change("z", p2, "n2")),
            Err(StoreError::NonceReused)
        ));
        let audit = one.audit_since(0, 100).unwrap();
        (one.load().unwrap(), audit)
    })
    .await
    .unwrap();
    assert_eq!(a.deploys.len(), 2);
    assert_eq!(
        b.iter()
            .map(|e| e.deploy.clone().unwrap())
            .collect::<Vec<_>>(),
        vec!["x".to_string(), "y".to_string()],
        "each change's audit entry exactly once"
    );
}
