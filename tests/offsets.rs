//! `flinksnap offsets` on the sources fixtures (`cargo xtask serializer-fixtures`, `SourcesJob`):
//! a real `FileSource` caught in the middle of its file, a FLIP-27 source whose splits and
//! enumerator state were written by the Kafka connector's own serializers (2.x: the connector
//! jar at hand is built for Flink 2.0), and the legacy `FlinkKafkaConsumer`'s union state.
//! What each source held is what the job assigned (`SourcesJob`'s constants).

use serde_json::{json, Value as J};

use crate::util::{flinksnap, flinksnap_ok, root};

fn sources_fixtures() -> Vec<(String, std::path::PathBuf, J)> {
    let mut out = Vec::new();
    // Every fixture version has one (a missing one fails).
    for (version, case_dir) in crate::util::versioned_cases("serializers", &["heap-savepoint-sources"]) {
        let case: J = serde_json::from_slice(&std::fs::read(case_dir.join("case.json")).unwrap()).unwrap();
        assert_eq!(case["flink_version"], version.as_str(), "{}", case_dir.display());
        let path = case_dir.join(case["snapshots"][0]["path"].as_str().unwrap());
        out.push((version, path, case));
    }
    out
}

fn by_uid<'a>(data: &'a J, uid: &str, case: &J) -> &'a J {
    let id = case["uids"][uid].as_str().unwrap();
    data.as_array().unwrap().iter().find(|o| o["operator_id"] == id).unwrap_or_else(|| panic!("no operator {uid} in {data:#}"))
}

#[test]
fn offsets_of_kafka_file_and_legacy_sources() {
    let fixtures = sources_fixtures();
    let mut kafka_checked = 0;
    for (version, path, case) in &fixtures {
        let out = flinksnap_ok(&["offsets", path.to_str().unwrap(), "--format", "json"]);
        let doc: J = serde_json::from_str(&out).unwrap();
        assert_eq!(doc["type"], "offsets");
        let data = &doc["data"];

        // legacy consumer: partition p of subtask p % 2 at 500 * (p + 1)
        let legacy = by_uid(data, "legacy-kafka", case);
        let mut offsets: Vec<J> = legacy["legacy_kafka_offsets"].as_array().unwrap().clone();
        offsets.sort_by_key(|o| o["partition"].as_i64());
        assert_eq!(
            J::Array(offsets),
            json!([
                {"subtask": 0, "topic": "legacy-orders", "partition": 0, "offset": 500},
                {"subtask": 1, "topic": "legacy-orders", "partition": 1, "offset": 1000},
                {"subtask": 0, "topic": "legacy-orders", "partition": 2, "offset": 1500},
            ]),
            "{version}"
        );

        // file source: one split over the whole 1,000,000-byte file, its reader part-way
        let file = by_uid(data, "file-source", case);
        let splits = file["splits"].as_array().unwrap();
        assert_eq!(splits.len(), 1, "{version}: {file:#}");
        let s = &splits[0];
        assert_eq!(s["connector"], "file");
        assert_eq!(s["path"], case["file"], "{version}");
        // Flink 1.13 and 1.14 record neither the file's size nor its modification time (version 1
        // of FileSourceSplitSerializer without them; 1.15 added them under the same version).
        let file_info = !(version.starts_with("1.13.") || version.starts_with("1.14."));
        let size = if file_info { Some(1_000_000) } else { None };
        assert_eq!((s["offset"].as_i64(), s["length"].as_i64(), s["file_size"].as_i64()), (Some(0), Some(1_000_000), size), "{version}");
        assert_eq!(s["file_modification_time"].as_i64().is_some_and(|t| t > 1_600_000_000_000), file_info, "{version}: {s}");
        let pos = s["reader_position"].as_array().unwrap();
        // TextLineInputFormat has no offsets: NO_OFFSET and the records read so far
        assert_eq!(pos[0], -1, "{version}");
        assert!((1..100_000).contains(&pos[1].as_i64().unwrap()), "{version}: {pos:?}");
        assert_eq!(file["enumerator"], json!({"connector": "file", "splits": [], "processed_paths": []}), "{version}");
        assert!(file["problems"].as_array().unwrap().is_empty());

        if case["kafka_connector"] == true {
            let kafka = by_uid(data, "kafka-source", case);
            let mut splits: Vec<J> = kafka["splits"].as_array().unwrap().clone();
            splits.sort_by_key(|o| o["partition"].as_i64());
            assert_eq!(
                J::Array(splits),
                json!([
                    {"subtask": 0, "connector": "kafka", "topic": "orders", "partition": 0, "starting_offset": 107, "stopping_offset": null},
                    {"subtask": 1, "connector": "kafka", "topic": "orders", "partition": 1, "starting_offset": 2007, "stopping_offset": null},
                    {"subtask": 0, "connector": "kafka", "topic": "orders", "partition": 2, "starting_offset": 30007, "stopping_offset": 40000},
                ]),
                "{version}"
            );
            let e = &kafka["enumerator"];
            assert_eq!(e["connector"], "kafka");
            assert_eq!(e["initial_discovery_finished"], true);
            let mut parts: Vec<(i64, String)> =
                e["partitions"].as_array().unwrap().iter().map(|p| (p["partition"].as_i64().unwrap(), p["status"].as_str().unwrap().to_owned())).collect();
            parts.sort();
            assert_eq!(parts, [(0, "assigned".into()), (1, "assigned".into()), (2, "assigned".into()), (3, "unassigned-initial".into())]);
            kafka_checked += 1;
        }

        // the table says the same
        let table = flinksnap_ok(&["offsets", path.to_str().unwrap()]);
        assert!(table.contains("legacy-orders/2") && table.contains("1500"), "{table}");
        if case["kafka_connector"] == true {
            assert!(table.contains("orders/3") && table.contains("unassigned-initial") && table.contains("30007"), "{table}");
        }
    }
    // The connector's splits in every 2.x (the 1.x fixtures record why they have none).
    let two_x = fixtures.iter().filter(|f| f.0.starts_with("2.")).count();
    assert!(two_x >= 2);
    assert_eq!(kafka_checked, two_x, "fixtures with the Kafka connector's splits");
}

#[test]
fn offsets_of_a_snapshot_without_sources() {
    let fx = root().join("testdata/flink-2.3.0/heap-savepoint-canonical");
    let dir = std::fs::read_dir(&fx).unwrap().flatten().map(|e| e.path()).find(|p| p.join("_metadata").is_file()).unwrap();
    let out = flinksnap_ok(&["offsets", dir.to_str().unwrap(), "--format", "json"]);
    let doc: J = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["data"], json!([]));
    let missing = flinksnap(&["offsets", "/nonexistent/snapshot"]);
    assert_eq!(missing.status.code(), Some(2));
}
