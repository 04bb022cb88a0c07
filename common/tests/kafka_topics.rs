//! The topics `api migrate` creates carry the configured replication factor and
//! `min.insync.replicas`, read back from the broker of the local stack (nisshi: it stores
//! both; it has no replication to enforce them, README "Scaling out").

use std::time::Duration;

use common::config::KafkaConfig;
use rdkafka::{
    admin::{AdminClient, AdminOptions, ResourceSpecifier},
    client::DefaultClientContext,
    ClientConfig,
};

#[tokio::test]
async fn topics_are_created_with_the_configured_replication_and_min_insync_replicas() {
    let brokers = std::env::var("ABTESTKIT_KAFKA").unwrap_or_else(|_| "127.0.0.1:9092".into());
    let topic = format!("topics_{}", uuid::Uuid::new_v4().simple());
    let cfg = KafkaConfig {
        brokers: brokers.parse().expect("brokers"),
        topic_replication: 3,
        topic_min_insync_replicas: 2,
        ..KafkaConfig::default()
    };
    common::kafka::ensure_topics(&cfg, &[(topic.as_str(), 4)]).await.expect("create");
    let admin: AdminClient<DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", &brokers).create().expect("admin");
    let metadata = admin.inner().fetch_metadata(Some(&topic), Duration::from_secs(10)).expect("metadata");
    let partitions = metadata.topics()[0].partitions();
    assert_eq!(partitions.len(), 4);
    assert!(partitions.iter().all(|p| p.replicas().len() == 3), "replication factor 3 on every partition");
    let options = AdminOptions::new().request_timeout(Some(Duration::from_secs(10)));
    let described = admin.describe_configs(&[ResourceSpecifier::Topic(&topic)], &options).await.expect("describe");
    let resource = described.into_iter().next().expect("one resource").expect("topic config");
    let entry = resource.get("min.insync.replicas").expect("min.insync.replicas");
    assert_eq!(entry.value.as_deref(), Some("2"));

    // 0 leaves the brokers' default: the topic config is not set by us.
    let other = format!("topics_default_{}", uuid::Uuid::new_v4().simple());
    let cfg = KafkaConfig { topic_min_insync_replicas: 0, ..cfg };
    common::kafka::ensure_topics(&cfg, &[(other.as_str(), 1)]).await.expect("create");
    let described = admin.describe_configs(&[ResourceSpecifier::Topic(&other)], &options).await.expect("describe");
    let resource = described.into_iter().next().expect("one resource").expect("topic config");
    let value = resource.get("min.insync.replicas").and_then(|e| e.value.clone());
    assert_ne!(value.as_deref(), Some("2"), "{value:?}");
}
