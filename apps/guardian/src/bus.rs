//! The Modbus side: one link to the machine (Modbus TCP over the WIT networking interface, or
//! Modbus RTU over the WIT UART interface), framing by rmodbus, timeouts and retries from the
//! register map. A timeout is retried `retries` times, then reported as a communication error;
//! an exception response is reported with its code at once (retrying it would get the same).

use std::io::{Read, Write};
use std::time::Duration;

use applibs::net::TcpStream;
use applibs::uart::{self, Uart};
use ferro_registermap::codec::Encoded;
use ferro_registermap::{ObjectType, Parity, ReadRequest, RegisterMap, StopBits, Transport};
use rmodbus::client::ModbusRequest;
use rmodbus::{ModbusProto, guess_response_frame_len};

/// What a read returned.
#[derive(Debug)]
pub enum Answer {
    Registers(Vec<u16>),
    Bits(Vec<bool>),
}

/// Why a request failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// No (valid) answer after the retries, or the link is down.
    CommError,
    /// The machine answered with this exception code.
    Exception(u8),
}

enum Link {
    Tcp {
        host: String,
        port: u16,
        stream: Option<TcpStream>,
    },
    Rtu {
        uart: Option<Uart>,
        name: String,
        config: uart::Config,
    },
}

/// The guardian's one connection to the machine.
pub struct Bus {
    link: Link,
    unit_id: u8,
    timeout: Duration,
    retries: u8,
    transaction: u16,
}

/// The longest Modbus frame (RTU: 256 bytes; TCP: 7 + 253).
const MAX_FRAME: usize = 260;

impl Bus {
    pub fn new(map: &RegisterMap) -> Bus {
        let link = match &map.transport {
            Transport::Tcp { host, port } => Link::Tcp {
                host: host.clone(),
                port: *port,
                stream: None,
            },
            Transport::Rtu {
                uart,
                baud_rate,
                parity,
                stop_bits,
            } => Link::Rtu {
                uart: None,
                name: uart.clone(),
                config: uart::Config {
                    baud_rate: *baud_rate,
                    data_bits: 8,
                    parity: match parity {
                        Parity::None => uart::Parity::None,
                        Parity::Even => uart::Parity::Even,
                        Parity::Odd => uart::Parity::Odd,
                    },
                    stop_bits: match stop_bits {
                        StopBits::One => uart::StopBits::One,
                        StopBits::Two => uart::StopBits::Two,
                    },
                    flow_control: uart::FlowControl::None,
                },
            },
        };
        Bus {
            link,
            unit_id: map.unit_id,
            timeout: Duration::from_millis(u64::from(map.timeout_ms)),
            retries: map.retries,
            transaction: 0,
        }
    }

    fn request(&mut self) -> ModbusRequest {
        match self.link {
            Link::Tcp { .. } => {
                self.transaction = self.transaction.wrapping_add(1);
                ModbusRequest::new_tcp_udp(self.unit_id, self.transaction)
            }
            Link::Rtu { .. } => ModbusRequest::new(self.unit_id, ModbusProto::Rtu),
        }
    }

    /// Reads what `read` covers.
    pub fn read(&mut self, read: &ReadRequest) -> Result<Answer, Failure> {
        let mut attempt = 0;
        loop {
            let mut request = self.request();
            let mut frame = Vec::new();
            let generated = match read.object {
                ObjectType::Coil => {
                    request.generate_get_coils(read.address, read.count, &mut frame)
                }
                ObjectType::DiscreteInput => {
                    request.generate_get_discretes(read.address, read.count, &mut frame)
                }
                ObjectType::HoldingRegister => {
                    request.generate_get_holdings(read.address, read.count, &mut frame)
                }
                ObjectType::InputRegister => {
                    request.generate_get_inputs(read.address, read.count, &mut frame)
                }
            };
            generated.map_err(|_| Failure::CommError)?;
            match self.exchange(&request, &frame) {
                Ok(response) => return parse_read(&request, read, &response),
                Err(Failure::CommError) if attempt < self.retries => attempt += 1,
                Err(failure) => return Err(failure),
            }
        }
    }

    /// Writes one point (a coil, or one or two holding registers from `address`).
    pub fn write(&mut self, address: u16, encoded: &Encoded) -> Result<(), Failure> {
        let mut attempt = 0;
        loop {
            let mut request = self.request();
            let mut frame = Vec::new();
            let generated = match encoded {
                Encoded::Bit(bit) => request.generate_set_coil(address, u8::from(*bit), &mut frame),
                Encoded::Registers(registers) if registers.len() == 1 => {
                    request.generate_set_holding(address, registers[0], &mut frame)
                }
                Encoded::Registers(registers) => {
                    request.generate_set_holdings_bulk(address, registers, &mut frame)
                }
            };
            generated.map_err(|_| Failure::CommError)?;
            match self.exchange(&request, &frame) {
                Ok(response) => {
                    return request
                        .parse_ok(&response)
                        .map_err(|_| exception_or_comm(&request, &response));
                }
                Err(Failure::CommError) if attempt < self.retries => attempt += 1,
                Err(failure) => return Err(failure),
            }
        }
    }

    /// Sends one request frame and reads one response frame; an exception response is
    /// `Err(Exception)`, anything malformed or late a `CommError` (and the link is reset).
    fn exchange(&mut self, request: &ModbusRequest, frame: &[u8]) -> Result<Vec<u8>, Failure> {
        let timeout = self.timeout;
        let result = match &mut self.link {
            Link::Tcp { host, port, stream } => tcp_exchange(host, *port, stream, frame, timeout),
            Link::Rtu { uart, name, config } => rtu_exchange(name, *config, uart, frame, timeout),
        };
        let response = match result {
            Some(response) => response,
            None => {
                self.reset();
                return Err(Failure::CommError);
            }
        };
        // A valid frame (header, CRC, unit) with the exception bit set: the machine's answer.
        if let Err(error) = request.parse_ok(&response) {
            let failure = exception_or_comm(request, &response);
            if failure == Failure::CommError || !error.is_modbus_error() {
                self.reset();
                return Err(Failure::CommError);
            }
            return Err(failure);
        }
        Ok(response)
    }

    /// Drops the connection (a late answer must not be taken for the next request's).
    fn reset(&mut self) {
        match &mut self.link {
            Link::Tcp { stream, .. } => *stream = None,
            Link::Rtu { uart, .. } => {
                // Drain what a late answer left on the line.
                if let Some(uart) = uart {
                    while uart
                        .read(MAX_FRAME as u32, Duration::from_millis(20))
                        .is_ok_and(|bytes| !bytes.is_empty())
                    {}
                }
            }
        }
    }
}

/// The exception code of a response whose function byte has the exception bit, when the frame
/// is otherwise valid (rmodbus checked the transaction, CRC and unit before the function).
fn exception_or_comm(request: &ModbusRequest, response: &[u8]) -> Failure {
    let start = match request.proto {
        ModbusProto::TcpUdp => 6,
        _ => 0,
    };
    match (response.get(start + 1), response.get(start + 2)) {
        (Some(function), Some(code)) if function & 0x80 != 0 && *code != 0 => {
            Failure::Exception(*code)
        }
        _ => Failure::CommError,
    }
}

fn parse_read(
    request: &ModbusRequest,
    read: &ReadRequest,
    response: &[u8],
) -> Result<Answer, Failure> {
    // rmodbus trusts the byte count; check it against what was asked before it reads.
    let start = match request.proto {
        ModbusProto::TcpUdp => 6,
        _ => 0,
    };
    let expected = if read.object.is_bit() {
        usize::from(read.count).div_ceil(8)
    } else {
        usize::from(read.count) * 2
    };
    let trailer = if request.proto == ModbusProto::Rtu {
        2
    } else {
        0
    };
    if response.get(start + 2).map(|count| usize::from(*count)) != Some(expected)
        || response.len() != start + 3 + expected + trailer
    {
        return Err(Failure::CommError);
    }
    if read.object.is_bit() {
        let mut bits = Vec::new();
        request
            .parse_bool(response, &mut bits)
            .map_err(|_| Failure::CommError)?;
        Ok(Answer::Bits(bits))
    } else {
        let mut registers = Vec::new();
        request
            .parse_u16(response, &mut registers)
            .map_err(|_| Failure::CommError)?;
        Ok(Answer::Registers(registers))
    }
}

/// Reads exactly `buf.len()` bytes from `read_some` (which returns an empty chunk on timeout).
fn fill(
    buf: &mut Vec<u8>,
    want: usize,
    mut read_some: impl FnMut(usize) -> Option<Vec<u8>>,
) -> Option<()> {
    while buf.len() < want {
        let chunk = read_some(want - buf.len())?;
        if chunk.is_empty() {
            return None;
        }
        buf.extend_from_slice(&chunk);
    }
    Some(())
}

fn tcp_exchange(
    host: &str,
    port: u16,
    stream: &mut Option<TcpStream>,
    frame: &[u8],
    timeout: Duration,
) -> Option<Vec<u8>> {
    if stream.is_none() {
        let mut connected = TcpStream::connect(host, port, timeout).ok()?;
        connected.set_read_timeout(timeout);
        *stream = Some(connected);
    }
    let connection = stream.as_mut()?;
    connection.write_all(frame).ok()?;
    let mut response = Vec::new();
    let mut read_some = |max: usize| {
        let mut chunk = vec![0; max];
        let count = connection.read(&mut chunk).ok()?;
        chunk.truncate(count);
        Some(chunk)
    };
    // The MBAP header (7 bytes) says how long the rest is.
    fill(&mut response, 7, &mut read_some)?;
    let total = mbap_frame_len(&response)?;
    if !(9..=MAX_FRAME).contains(&total) {
        return None;
    }
    fill(&mut response, total, &mut read_some)?;
    Some(response)
}

/// The length of a Modbus TCP frame from its MBAP header: 6 bytes, then as many as the header's
/// length field counts (the unit ID and the PDU); `None` unless the protocol ID is 0 (Modbus).
/// Not rmodbus's `guess_response_frame_len`, which returns a `u8` and so refuses the 259-byte
/// answer to a read of 125 registers (and of 124), the most one read asks for.
fn mbap_frame_len(header: &[u8]) -> Option<usize> {
    let protocol = u16::from_be_bytes([*header.get(2)?, *header.get(3)?]);
    let length = u16::from_be_bytes([*header.get(4)?, *header.get(5)?]);
    (protocol == 0).then_some(6 + usize::from(length))
}

fn rtu_exchange(
    name: &str,
    config: uart::Config,
    uart: &mut Option<Uart>,
    frame: &[u8],
    timeout: Duration,
) -> Option<Vec<u8>> {
    if uart.is_none() {
        *uart = Some(Uart::open(name, config).ok()?);
    }
    let port = uart.as_ref()?;
    port.write_all(frame).ok()?;
    let mut response = Vec::new();
    let read_some = |max: usize| port.read(max as u32, timeout).ok();
    // Unit, function and the byte count (or exception code) say how long the frame is.
    fill(&mut response, 3, read_some)?;
    let total = usize::from(guess_response_frame_len(&response, ModbusProto::Rtu).ok()?);
    if !(5..=MAX_FRAME).contains(&total) {
        return None;
    }
    fill(&mut response, total, read_some)?;
    Some(response)
}
