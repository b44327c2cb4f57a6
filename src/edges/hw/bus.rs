//! The two buses a hardware kind talks through, as traits: the driver code that runs on
//! a Pi (rppal) is the code the tests run against the mock device models.

use std::fmt;

use super::mock::{MockI2c, MockSpi};

/// Why a bus transaction failed. Every one marks the device's node degraded with this
/// reason; the node retries with backoff and never stops.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BusError {
    /// No device acknowledged the address: unplugged, wrong address, or powered off.
    Nack { bus: String, addr: u8 },
    /// The transaction did not complete in time (clock stretching, a hung device).
    Timeout { bus: String },
    /// The device answered, but not as its datasheet says (wrong chip id, bad CRC).
    Device(String),
    /// The bus itself could not be opened or used (`/dev/i2c-1` missing, permissions).
    Io(String),
}

impl fmt::Display for BusError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BusError::Nack { bus, addr } => {
                write!(f, "{bus}: no device answers at 0x{addr:02x} (NACK)")
            }
            BusError::Timeout { bus } => write!(f, "{bus}: transaction timed out"),
            BusError::Device(e) => f.write_str(e),
            BusError::Io(e) => f.write_str(e),
        }
    }
}

impl std::error::Error for BusError {}

/// One I2C bus (`i2c-1` on a Pi's header). Thread-safe: transactions are serialised
/// inside, each addressed to one 7-bit device address.
pub trait I2cBus: Send + Sync {
    /// `"rppal"` or `"mock"`.
    fn backend(&self) -> &'static str;
    /// `i2c-<n>`, as errors and status name it.
    fn name(&self) -> &str;
    /// Write `bytes` to the device at `addr` (a register address first, for most chips).
    fn write(&self, addr: u8, bytes: &[u8]) -> Result<(), BusError>;
    /// Write `wr` then read `rd.len()` bytes with a repeated start (a register read).
    fn write_read(&self, addr: u8, wr: &[u8], rd: &mut [u8]) -> Result<(), BusError>;
    /// The mock behind this bus, for a kind to attach its device model to.
    fn mock(&self) -> Option<&MockI2c> {
        None
    }
}

/// One SPI device (a bus and chip select: `spi-0.0` is `/dev/spidev0.0`).
pub trait SpiDevice: Send + Sync {
    fn backend(&self) -> &'static str;
    /// `spi-<bus>.<cs>`.
    fn name(&self) -> &str;
    /// One full-duplex transaction with chip select held: clock out `tx`, filling `rx`
    /// (the same length) with what the device sent back.
    fn transfer(&self, tx: &[u8], rx: &mut [u8]) -> Result<(), BusError>;
    fn mock(&self) -> Option<&MockSpi> {
        None
    }
}

/// Register access the same way over either bus, for chips that speak both (BME280):
/// `read(reg, buf)` fills `buf` from `reg` on, auto-incrementing; `write(reg, v)` sets one.
pub enum Registers {
    I2c {
        bus: std::sync::Arc<dyn I2cBus>,
        addr: u8,
    },
    Spi(std::sync::Arc<dyn SpiDevice>),
}

impl Registers {
    pub fn read(&self, reg: u8, buf: &mut [u8]) -> Result<(), BusError> {
        match self {
            Registers::I2c { bus, addr } => bus.write_read(*addr, &[reg], buf),
            Registers::Spi(dev) => {
                // Bit 7 set: a read; the device shifts data out after the address byte,
                // auto-incrementing. In chunks of 32 so the buffers stay on the stack.
                let mut tx = [0u8; 33];
                let mut rx = [0u8; 33];
                for (i, chunk) in buf.chunks_mut(32).enumerate() {
                    let n = chunk.len() + 1;
                    tx[0] = reg.wrapping_add((i * 32) as u8) | 0x80;
                    dev.transfer(&tx[..n], &mut rx[..n])?;
                    chunk.copy_from_slice(&rx[1..n]);
                }
                Ok(())
            }
        }
    }

    pub fn write(&self, reg: u8, value: u8) -> Result<(), BusError> {
        match self {
            Registers::I2c { bus, addr } => bus.write(*addr, &[reg, value]),
            // Bit 7 clear: a write of the register that follows.
            Registers::Spi(dev) => dev.transfer(&[reg & 0x7f, value], &mut [0; 2]),
        }
    }

    /// `i2c-1:0x76` or `spi-0.0`: how the scene file and status name the device.
    pub fn device_name(&self) -> String {
        match self {
            Registers::I2c { bus, addr } => format!("{}:0x{addr:02x}", bus.name()),
            Registers::Spi(dev) => dev.name().to_string(),
        }
    }
}
