//! Telemetry: reads the sample appliance's I2C temperature sensor (TMP102-style, register 0)
//! and publishes `{"temperature_c":..,"sample":..}` over MQTT 3.1.1 with TLS authenticated by
//! the device certificate: the device makes the TLS connection, the app never sees the key.
//! The MQTT connection is the guardian uplink's (`guardian_uplink::mqtt`, packets by
//! `mqttbytes`); QoS 0, no store and forward (the guardian has those).
//!
//! Arguments (`CmdArgs`): broker host, port, interval in milliseconds, topic.

use std::time::Duration;

use applibs::i2c::I2cMaster;
use applibs::log;
use guardian_uplink::Connector;
use guardian_uplink::device::TlsConnector;
use guardian_uplink::mqtt::{Connection, MqttError};
use guardian_uplink::mqttbytes::QoS;
use guardian_uplink::mqttbytes::v4::{Connect, Packet, Publish};
use sample_appliance::{SAMPLE_TEMPERATURE_SENSOR_ADDRESS, SAMPLE_TEMPERATURE_SENSOR_I2C};

fn temperature_c(sensor: &I2cMaster) -> Result<f32, applibs::Error> {
    let address = SAMPLE_TEMPERATURE_SENSOR_ADDRESS as u16;
    let bytes = sensor.write_read(address, &[0x00], 2)?;
    let raw = i16::from_be_bytes([bytes[0], bytes[1]]) >> 4;
    Ok(f32::from(raw) * 0.0625)
}

fn run(host: &str, port: u16, interval: Duration, topic: &str) -> Result<(), MqttError> {
    let sensor = I2cMaster::new(SAMPLE_TEMPERATURE_SENSOR_I2C);
    let transport = TlsConnector {
        host: host.to_owned(),
        port,
        timeout: Duration::from_secs(10),
    }
    .connect()?;
    let mut connect = Connect::new("ferro-telemetry");
    connect.keep_alive = 60;
    let (mut connection, _) = Connection::open(transport, &connect, Duration::from_secs(10))?;
    log::info(&format!(
        "telemetry: connected to {host}:{port}, publishing on {topic}"
    ));
    let mut sample = 0u64;
    loop {
        let temperature = temperature_c(&sensor).map_err(|e| MqttError::Io(e.into()))?;
        let payload = format!("{{\"temperature_c\":{temperature:.2},\"sample\":{sample}}}");
        connection.send(&Packet::Publish(Publish::new(
            topic,
            QoS::AtMostOnce,
            payload.as_bytes(),
        )))?;
        if sample == 0 {
            log::info(&format!("telemetry: first sample {payload}"));
        }
        sample += 1;
        applibs::time::sleep(interval);
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let host = args.next().unwrap_or_else(|| "127.0.0.1".to_owned());
    let port = args.next().and_then(|arg| arg.parse().ok()).unwrap_or(8883);
    let interval_ms = args.next().and_then(|arg| arg.parse().ok()).unwrap_or(5000);
    let topic = args.next().unwrap_or_else(|| "ferro/telemetry".to_owned());
    if let Err(error) = run(&host, port, Duration::from_millis(interval_ms), &topic) {
        log::error(&format!("telemetry: {error}"));
        std::process::exit(1);
    }
}
