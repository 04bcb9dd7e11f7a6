//! The payload encodings: JSON batches and commands, Sparkplug B NBIRTH/NDATA/NDEATH and NCMD,
//! and the `seq` appended to a stored NDATA.

use ferro_registermap::{PointName, Quality, Reading, Value, ValueKind};
use guardian_uplink::PointInfo;
use guardian_uplink::json::{self, CommandError};
use guardian_uplink::sparkplug::{self, DataType, Payload};
use proptest::prelude::*;
use prost::Message;

fn name(text: &str) -> PointName {
    PointName::new(text).expect("point name")
}

fn points() -> Vec<PointInfo> {
    vec![
        PointInfo {
            name: name("temp"),
            unit: Some("degC".into()),
            kind: ValueKind::Number,
        },
        PointInfo {
            name: name("run"),
            unit: None,
            kind: ValueKind::Bool,
        },
    ]
}

fn readings() -> Vec<Reading> {
    vec![
        Reading {
            point: name("temp"),
            value: Some(Value::Float(21.5)),
            timestamp_ms: 1000,
            quality: Quality::Good,
        },
        Reading {
            point: name("run"),
            value: None,
            timestamp_ms: 1001,
            quality: Quality::ModbusException(2),
        },
    ]
}

#[test]
fn a_json_batch_has_every_point_with_unit_timestamp_and_quality() {
    let batch = json::Batch::new("dev", 7, 2000, 3, &readings(), &points());
    let value: serde_json::Value = serde_json::from_slice(&batch.to_vec()).expect("json");
    assert_eq!(
        value,
        serde_json::json!({
            "device": "dev", "batch": 7, "timestamp": 2000, "dropped": 3,
            "points": [
                {"name": "temp", "value": 21.5, "unit": "degC", "timestamp": 1000, "quality": "good"},
                {"name": "run", "value": null, "timestamp": 1001, "quality": {"modbus_exception": 2}},
            ]
        })
    );
}

#[test]
fn json_commands_are_write_requests_or_a_specific_error() {
    let request = json::parse_command(br#"{"id":"a","point":"temp","value":20}"#).expect("valid");
    assert_eq!(
        (request.id.as_str(), request.point.as_str(), request.value),
        ("a", "temp", Value::Int(20))
    );
    for (bad, id) in [
        (&br#"{"id":"b","point":"1temp","value":1}"#[..], Some("b")),
        (br#"{"id":"c","point":"temp"}"#, Some("c")),
        (br#"not json"#, None),
        (br#"{"point":"temp","value":1}"#, None),
    ] {
        match json::parse_command(bad) {
            Err(CommandError::Malformed { id: got, .. }) => assert_eq!(got.as_deref(), id),
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn nbirth_declares_every_metric_and_ndeath_carries_bd_seq() {
    let birth = Payload::decode(&sparkplug::nbirth(5, 3, &points())[..]).expect("decode");
    assert_eq!(birth.seq, Some(0));
    let names: Vec<_> = birth
        .metrics
        .iter()
        .map(|m| m.name.clone().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "bdSeq",
            "Node Control/Rebirth",
            "Guardian/Dropped",
            "Guardian/Provenance",
            "Guardian/Unsigned",
            "temp",
            "run"
        ]
    );
    assert_eq!(birth.metrics[3].datatype, Some(DataType::Bytes as u32));
    assert_eq!(birth.metrics[5].datatype, Some(DataType::Double as u32));
    assert_eq!(birth.metrics[6].datatype, Some(DataType::Boolean as u32));
    let death = Payload::decode(&sparkplug::ndeath(6, 3)[..]).expect("decode");
    assert_eq!(death.metrics[0].name.as_deref(), Some("bdSeq"));
    assert_eq!(death.metrics[0].value, birth.metrics[0].value);
}

#[test]
fn ndata_carries_quality_exception_and_the_drop_count() {
    let data =
        Payload::decode(&sparkplug::ndata(2000, 4, &readings(), &points())[..]).expect("decode");
    assert_eq!(data.seq, None, "set when sent");
    let run = &data.metrics[1];
    assert_eq!(run.is_null, Some(true));
    let props = run.properties.as_ref().expect("properties");
    assert_eq!(props.keys, ["Quality", "ModbusException"]);
    let dropped = data.metrics.last().expect("metric");
    assert_eq!(dropped.name.as_deref(), Some(sparkplug::DROPPED));
}

#[test]
fn the_provenance_metric_follows_the_signed_bytes_which_stay_a_prefix_of_what_is_sent() {
    let historical = [true, false];
    let signed = sparkplug::ndata_with(2000, 0, &readings(), &historical, None, &points());
    let sealed = sparkplug::with_provenance(signed.clone(), 2000, b"COSE".to_vec());
    let sent = sparkplug::with_seq(&sealed, 7);
    assert!(
        sent.starts_with(&signed),
        "the signed bytes are the message's prefix"
    );
    let data = Payload::decode(&sent[..]).expect("decode");
    assert_eq!(data.seq, Some(7));
    assert_eq!(data.metrics[0].is_historical, Some(true));
    assert_eq!(data.metrics[1].is_historical, None);
    let provenance = data.metrics.last().expect("metric");
    assert_eq!(provenance.name.as_deref(), Some(sparkplug::PROVENANCE));
    assert_eq!(provenance.datatype, Some(DataType::Bytes as u32));
    assert_eq!(
        provenance.value,
        Some(sparkplug::generated::payload::metric::Value::BytesValue(
            b"COSE".to_vec()
        ))
    );
    // Unsigned: the reason is a metric of the (unsigned) bytes themselves.
    let unsigned = Payload::decode(
        &sparkplug::ndata_with(2000, 0, &readings(), &[], Some("no signer"), &points())[..],
    )
    .expect("decode");
    let marked = unsigned.metrics.last().expect("metric");
    assert_eq!(marked.name.as_deref(), Some(sparkplug::UNSIGNED));
    assert!(unsigned.metrics.iter().all(|m| m.is_historical.is_none()));
}

proptest! {
    /// Appending `seq` to a stored NDATA gives the same message with `seq` set, whatever the
    /// payload, for every `seq`.
    #[test]
    fn with_seq_sets_seq_and_changes_nothing_else(seq in any::<u8>(), value in any::<f64>(), t in any::<u64>()) {
        let readings = vec![Reading { point: name("temp"), value: Some(Value::Float(value)), timestamp_ms: t, quality: Quality::Stale }];
        let stored = sparkplug::ndata(t, 0, &readings, &points());
        let sent = Payload::decode(&sparkplug::with_seq(&stored, seq)[..]).expect("decode");
        let mut expected = Payload::decode(&stored[..]).expect("decode");
        expected.seq = Some(u64::from(seq));
        // Compared as encodings: a NaN value is not equal to itself.
        prop_assert_eq!(sent.encode_to_vec(), expected.encode_to_vec());
    }
}

#[test]
fn ncmd_writes_rebirth_and_bad_metrics() {
    use sparkplug::generated::payload::Metric;
    use sparkplug::generated::payload::metric::Value as V;
    let metric = |name: Option<&str>, value: Option<V>| Metric {
        name: name.map(str::to_owned),
        value,
        ..Metric::default()
    };
    let payload = Payload {
        timestamp: Some(9),
        metrics: vec![
            metric(Some("temp"), Some(V::DoubleValue(19.5))),
            metric(Some("run"), Some(V::BooleanValue(true))),
            metric(Some("Node Control/Rebirth"), Some(V::BooleanValue(true))),
            metric(Some("temp"), Some(V::StringValue("hot".into()))),
            metric(None, Some(V::IntValue(1))),
            metric(Some("9bad"), Some(V::IntValue(1))),
        ],
        ..Payload::default()
    }
    .encode_to_vec();
    let ncmd = sparkplug::parse_ncmd(&payload).expect("parses");
    assert!(ncmd.rebirth);
    assert_eq!(ncmd.writes.len(), 2);
    assert_eq!(ncmd.writes[0].id, "ncmd:9:temp");
    assert_eq!(ncmd.writes[0].value, Value::Float(19.5));
    assert_eq!(ncmd.writes[1].value, Value::Bool(true));
    assert_eq!(ncmd.rejected.len(), 3);
    assert!(matches!(
        sparkplug::parse_ncmd(b"\xff\xff"),
        Err(CommandError::MalformedNcmd(_))
    ));
}
