//! Attached hardware besides `[gpio]` pins: I2C and SPI buses (rppal where the bus
//! exists, device models elsewhere, chosen by `[hardware] backend` and announced), the
//! `hw` thread that runs blocking hardware work off the event loop, and the output
//! devices kinds attach for tools and status.
//!
//! A kind's setup asks for its bus here (`i2c(1)`, `spi(0, 0, hz)`); when the bus is a
//! mock it attaches its chip's model (`bus.mock()`), so the same driver runs either way.

pub mod bus;
pub mod devices;
pub mod mock;
#[cfg(feature = "rpi")]
pub mod rppal;
pub mod scene;
pub mod worker;

use std::sync::{Arc, Mutex};

use serde_json::{Value as Json, json};

pub use bus::{BusError, I2cBus, Registers, SpiDevice};
pub use devices::{Device, Devices};
pub use worker::Worker;

use crate::config::settings::{BusChoice, HardwareSettings};
use mock::{MockI2c, MockSpi};
use scene::Scene;

type SpiAt = (u8, u8);

/// The node's buses, opened on first use and shared by every kind on them.
pub struct Hardware {
    choice: BusChoice,
    scene: Arc<Scene>,
    i2c: Mutex<Vec<(u8, Arc<dyn I2cBus>)>>,
    /// By (bus, chip select).
    spi: Mutex<Vec<(SpiAt, Arc<dyn SpiDevice>)>>,
    worker: worker::LazyWorker,
    /// The attached output devices (displays, LEDs).
    pub devices: Devices,
}

impl Hardware {
    pub fn new(settings: &HardwareSettings) -> Hardware {
        Hardware {
            choice: settings.backend,
            scene: Arc::new(Scene::new(&settings.mock_scene)),
            i2c: Mutex::new(Vec::new()),
            spi: Mutex::new(Vec::new()),
            worker: Default::default(),
            devices: Devices::default(),
        }
    }

    /// The mock scene (what mock devices sense), for GPIO device models too.
    pub fn scene(&self) -> &Arc<Scene> {
        &self.scene
    }

    /// The `hw` thread, started on first use.
    pub fn worker(&self) -> Worker {
        self.worker.get()
    }

    /// I2C bus `bus`: opened once, then shared.
    pub fn i2c(&self, bus: u8) -> Result<Arc<dyn I2cBus>, BusError> {
        let mut open = self.i2c.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, b)) = open.iter().find(|(n, _)| *n == bus) {
            return Ok(b.clone());
        }
        let mock = || -> Arc<dyn I2cBus> { Arc::new(MockI2c::new(bus, self.scene.clone())) };
        let b = match self.choice {
            BusChoice::Mock => {
                log::info!("hardware: i2c-{bus} is a mock bus (configured)");
                mock()
            }
            BusChoice::Rppal => real_i2c(bus)?,
            BusChoice::Auto => match real_i2c(bus) {
                Ok(b) => b,
                Err(e) => {
                    log::info!("hardware: {e}; using a mock i2c-{bus} whose devices are models");
                    mock()
                }
            },
        };
        open.push((bus, b.clone()));
        Ok(b)
    }

    /// SPI device `bus`.`cs` at `clock_hz`: opened once, then shared.
    pub fn spi(&self, bus: u8, cs: u8, clock_hz: u32) -> Result<Arc<dyn SpiDevice>, BusError> {
        let mut open = self.spi.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, d)) = open.iter().find(|(n, _)| *n == (bus, cs)) {
            return Ok(d.clone());
        }
        let mock = || -> Arc<dyn SpiDevice> { Arc::new(MockSpi::new(bus, cs, self.scene.clone())) };
        let d = match self.choice {
            BusChoice::Mock => {
                log::info!("hardware: spi-{bus}.{cs} is a mock device (configured)");
                mock()
            }
            BusChoice::Rppal => real_spi(bus, cs, clock_hz)?,
            BusChoice::Auto => match real_spi(bus, cs, clock_hz) {
                Ok(d) => d,
                Err(e) => {
                    log::info!(
                        "hardware: {e}; using a mock spi-{bus}.{cs} whose device is a model"
                    );
                    mock()
                }
            },
        };
        open.push(((bus, cs), d.clone()));
        Ok(d)
    }

    /// For status: the buses in use with their backend (and, for mocks, each model's
    /// state), and the attached devices with what they show. Empty lists when none.
    pub fn json(&self) -> Json {
        let i2c: Vec<Json> = self
            .i2c
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(_, b)| {
                let models = b.mock().map(|m| m.json()).unwrap_or_default();
                json!({ "bus": b.name(), "backend": b.backend(), "models": models })
            })
            .collect();
        let spi: Vec<Json> = self
            .spi
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(_, d)| {
                let models: Vec<Json> = d.mock().and_then(|m| m.json()).into_iter().collect();
                json!({ "bus": d.name(), "backend": d.backend(), "models": models })
            })
            .collect();
        json!({
            "buses": i2c.into_iter().chain(spi).collect::<Vec<_>>(),
            "devices": self.devices.json(),
        })
    }
}

#[cfg(feature = "rpi")]
fn real_i2c(bus: u8) -> Result<Arc<dyn I2cBus>, BusError> {
    let b = rppal::RppalI2c::open(bus)?;
    log::info!("hardware: i2c-{bus} through rppal (/dev/i2c-{bus})");
    Ok(Arc::new(b))
}

#[cfg(not(feature = "rpi"))]
fn real_i2c(bus: u8) -> Result<Arc<dyn I2cBus>, BusError> {
    Err(BusError::Io(format!(
        "i2c-{bus}: this build has no `rpi` feature (no real buses)"
    )))
}

#[cfg(feature = "rpi")]
fn real_spi(bus: u8, cs: u8, clock_hz: u32) -> Result<Arc<dyn SpiDevice>, BusError> {
    let d = rppal::RppalSpi::open(bus, cs, clock_hz)?;
    log::info!("hardware: spi-{bus}.{cs} through rppal (/dev/spidev{bus}.{cs})");
    Ok(Arc::new(d))
}

#[cfg(not(feature = "rpi"))]
fn real_spi(bus: u8, cs: u8, _clock_hz: u32) -> Result<Arc<dyn SpiDevice>, BusError> {
    Err(BusError::Io(format!(
        "spi-{bus}.{cs}: this build has no `rpi` feature (no real buses)"
    )))
}
