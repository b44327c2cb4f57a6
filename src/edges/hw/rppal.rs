//! Real buses through rppal: `/dev/i2c-<n>` and `/dev/spidev<b>.<c>` (any Linux with the
//! kernel's i2c-dev and spidev drivers, a Pi after `raspi-config nonint do_i2c 0`).
//! Each is behind a mutex: rppal's handles are `Send`, not `Sync`, and a transaction is
//! one ioctl, so serialising them costs nothing a bus would not.

use std::sync::Mutex;

use rppal::i2c::I2c;
use rppal::spi::{Bus, Mode, SlaveSelect, Spi};

use super::bus::{BusError, I2cBus, SpiDevice};

/// `/dev/i2c-<bus>`.
pub struct RppalI2c {
    name: String,
    i2c: Mutex<I2c>,
}

impl RppalI2c {
    pub fn open(bus: u8) -> Result<RppalI2c, BusError> {
        let i2c = I2c::with_bus(bus).map_err(|e| {
            BusError::Io(format!(
                "cannot open /dev/i2c-{bus} ({e}); on a Pi enable I2C with `sudo raspi-config nonint do_i2c 0` (or dtparam=i2c_arm=on) and reboot"
            ))
        })?;
        Ok(RppalI2c {
            name: format!("i2c-{bus}"),
            i2c: Mutex::new(i2c),
        })
    }

    fn err(&self, addr: u8, e: rppal::i2c::Error) -> BusError {
        match &e {
            // The kernel reports a missing ACK as ENXIO or EREMOTEIO, a stuck bus as ETIMEDOUT.
            rppal::i2c::Error::Io(io) => match io.raw_os_error() {
                Some(libc::ENXIO) | Some(libc::EREMOTEIO) => BusError::Nack {
                    bus: self.name.clone(),
                    addr,
                },
                Some(libc::ETIMEDOUT) => BusError::Timeout {
                    bus: self.name.clone(),
                },
                _ => BusError::Io(format!("{}: {e}", self.name)),
            },
            _ => BusError::Io(format!("{}: {e}", self.name)),
        }
    }
}

impl I2cBus for RppalI2c {
    fn backend(&self) -> &'static str {
        "rppal"
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn write(&self, addr: u8, bytes: &[u8]) -> Result<(), BusError> {
        let mut i2c = self.i2c.lock().unwrap_or_else(|e| e.into_inner());
        i2c.set_slave_address(u16::from(addr))
            .and_then(|()| i2c.write(bytes))
            .map(|_| ())
            .map_err(|e| self.err(addr, e))
    }

    fn write_read(&self, addr: u8, wr: &[u8], rd: &mut [u8]) -> Result<(), BusError> {
        let mut i2c = self.i2c.lock().unwrap_or_else(|e| e.into_inner());
        i2c.set_slave_address(u16::from(addr))
            .and_then(|()| i2c.write_read(wr, rd))
            .map_err(|e| self.err(addr, e))
    }
}

/// `/dev/spidev<bus>.<cs>`, mode 0.
pub struct RppalSpi {
    name: String,
    spi: Mutex<Spi>,
}

impl RppalSpi {
    pub fn open(bus: u8, cs: u8, clock_hz: u32) -> Result<RppalSpi, BusError> {
        let b = match bus {
            0 => Bus::Spi0,
            1 => Bus::Spi1,
            _ => {
                return Err(BusError::Io(format!(
                    "SPI bus {bus}: only buses 0 and 1 are supported"
                )));
            }
        };
        let s = match cs {
            0 => SlaveSelect::Ss0,
            1 => SlaveSelect::Ss1,
            2 => SlaveSelect::Ss2,
            _ => {
                return Err(BusError::Io(format!(
                    "SPI chip select {cs}: only 0, 1 and 2 are supported"
                )));
            }
        };
        let spi = Spi::new(b, s, clock_hz, Mode::Mode0).map_err(|e| {
            BusError::Io(format!(
                "cannot open /dev/spidev{bus}.{cs} ({e}); on a Pi enable SPI with `sudo raspi-config nonint do_spi 0` (or dtparam=spi=on) and reboot"
            ))
        })?;
        Ok(RppalSpi {
            name: format!("spi-{bus}.{cs}"),
            spi: Mutex::new(spi),
        })
    }
}

impl SpiDevice for RppalSpi {
    fn backend(&self) -> &'static str {
        "rppal"
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn transfer(&self, tx: &[u8], rx: &mut [u8]) -> Result<(), BusError> {
        let spi = self.spi.lock().unwrap_or_else(|e| e.into_inner());
        spi.transfer(rx, tx)
            .map(|_| ())
            .map_err(|e| BusError::Io(format!("{}: {e}", self.name)))
    }
}
