//! Register codecs: decode(encode(v)) gives v back for every data type, both word orders and
//! scaling (within half a scale step for scaled integers), and known register layouts.

use ferro_registermap::codec::{Encoded, decode_registers, encode};
use ferro_registermap::{
    DataType, ObjectType, Point, PointName, Refusal, Value, WordOrder, Writable,
};
use proptest::prelude::*;

fn point(data_type: DataType, word_order: WordOrder, scale: f64, offset: f64) -> Point {
    Point {
        name: PointName::new("p").unwrap(),
        object: ObjectType::HoldingRegister,
        address: 0,
        data_type,
        word_order,
        scale,
        offset,
        unit: None,
        poll_ms: 1000,
        deadband: 0.0,
        writable: Some(Writable::Bounds {
            min: f64::MIN,
            max: f64::MAX,
        }),
    }
}

fn registers(encoded: Encoded) -> Vec<u16> {
    match encoded {
        Encoded::Registers(registers) => registers,
        Encoded::Bit(_) => panic!("a register point encoded a bit"),
    }
}

fn word_orders() -> impl Strategy<Value = WordOrder> {
    prop_oneof![Just(WordOrder::HighFirst), Just(WordOrder::LowFirst)]
}

proptest! {
    #[test]
    fn integers_round_trip(
        (data_type, raw) in prop_oneof![
            any::<u16>().prop_map(|v| (DataType::U16, i64::from(v))),
            any::<i16>().prop_map(|v| (DataType::I16, i64::from(v))),
            any::<u32>().prop_map(|v| (DataType::U32, i64::from(v))),
            any::<i32>().prop_map(|v| (DataType::I32, i64::from(v))),
        ],
        order in word_orders(),
    ) {
        let point = point(data_type, order, 1.0, 0.0);
        let encoded = registers(encode(&point, Value::Int(raw)).unwrap());
        prop_assert_eq!(encoded.len(), usize::from(data_type.width()));
        prop_assert_eq!(decode_registers(&point, &encoded), Some(Value::Int(raw)));
    }

    #[test]
    fn registers_round_trip(words in any::<[u16; 2]>(), order in word_orders(),
        data_type in prop_oneof![Just(DataType::U16), Just(DataType::I16), Just(DataType::U32), Just(DataType::I32)]) {
        // Every register content decodes to a value that encodes to the same registers.
        let point = point(data_type, order, 1.0, 0.0);
        let width = usize::from(data_type.width());
        let value = decode_registers(&point, &words[..width]).unwrap();
        prop_assert_eq!(registers(encode(&point, value).unwrap()), words[..width].to_vec());
    }

    #[test]
    fn floats_round_trip(value in any::<f32>().prop_filter("finite", |v| v.is_finite()), order in word_orders()) {
        let point = point(DataType::F32, order, 1.0, 0.0);
        let encoded = registers(encode(&point, Value::Float(f64::from(value))).unwrap());
        prop_assert_eq!(decode_registers(&point, &encoded), Some(Value::Float(f64::from(value))));
    }

    #[test]
    fn scaled_values_round_trip_within_half_a_step(
        raw in any::<i16>(),
        scale in prop_oneof![Just(0.1), Just(0.01), Just(2.0), Just(-0.5)],
        offset in -100.0f64..100.0,
        nudge in -0.49f64..0.49,
    ) {
        // An engineering value near raw's is written as raw, and reads back as raw's value.
        let point = point(DataType::I16, WordOrder::HighFirst, scale, offset);
        let exact = f64::from(raw) * scale + offset;
        let encoded = registers(encode(&point, Value::Float(exact + nudge * scale)).unwrap());
        prop_assert_eq!(encoded.clone(), vec![raw as u16]);
        let Some(Value::Float(read)) = decode_registers(&point, &encoded) else {
            panic!("a scaled point decoded to a non-float");
        };
        prop_assert!((read - exact).abs() <= 1e-9 * exact.abs().max(1.0));
    }
}

#[test]
fn word_order_is_the_order_of_the_two_registers() {
    let high = point(DataType::U32, WordOrder::HighFirst, 1.0, 0.0);
    let low = point(DataType::U32, WordOrder::LowFirst, 1.0, 0.0);
    assert_eq!(
        registers(encode(&high, Value::Int(0x0001_0002)).unwrap()),
        [1, 2]
    );
    assert_eq!(
        registers(encode(&low, Value::Int(0x0001_0002)).unwrap()),
        [2, 1]
    );
    // 1.0f32 is 0x3F800000.
    let float = point(DataType::F32, WordOrder::HighFirst, 1.0, 0.0);
    assert_eq!(
        decode_registers(&float, &[0x3F80, 0]),
        Some(Value::Float(1.0))
    );
    let signed = point(DataType::I16, WordOrder::HighFirst, 0.1, 0.0);
    assert_eq!(
        decode_registers(&signed, &[0xFFFF]),
        Some(Value::Float(-0.1))
    );
}

#[test]
fn writes_outside_bounds_or_type_are_refused() {
    let mut setpoint = point(DataType::I16, WordOrder::HighFirst, 0.1, 0.0);
    setpoint.writable = Some(Writable::Bounds {
        min: 5.0,
        max: 25.0,
    });
    assert_eq!(
        registers(encode(&setpoint, Value::Float(21.5)).unwrap()),
        [215]
    );
    assert_eq!(registers(encode(&setpoint, Value::Int(5)).unwrap()), [50]);
    for value in [
        Value::Float(25.01),
        Value::Int(-3),
        Value::Float(f64::NAN),
        Value::Float(f64::INFINITY),
    ] {
        assert!(
            matches!(encode(&setpoint, value), Err(Refusal::OutOfBounds { .. })),
            "{value:?}"
        );
    }
    assert!(matches!(
        encode(&setpoint, Value::Bool(true)),
        Err(Refusal::WrongType { .. })
    ));
    setpoint.writable = None;
    assert!(matches!(
        encode(&setpoint, Value::Float(20.0)),
        Err(Refusal::NotWritable { .. })
    ));
    let mut coil = point(DataType::Bool, WordOrder::HighFirst, 1.0, 0.0);
    coil.object = ObjectType::Coil;
    coil.writable = Some(Writable::Bool);
    assert_eq!(encode(&coil, Value::Bool(true)), Ok(Encoded::Bit(true)));
    assert!(matches!(
        encode(&coil, Value::Int(1)),
        Err(Refusal::WrongType { .. })
    ));
}
