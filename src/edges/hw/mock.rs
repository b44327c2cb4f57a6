//! Mock buses: device models, not canned values. A kind attaches the model of its chip at
//! its address; the model answers register reads and writes the way the chip does (ids,
//! calibration, status bits), and the scene (`scene.rs`) decides what it senses and
//! whether it answers at all, so the driver code that runs on a Pi is what the tests run.

use std::sync::{Arc, Mutex};

use serde_json::{Value as Json, json};

use super::bus::{BusError, I2cBus, SpiDevice};
use super::scene::{Scene, SceneData};

/// A chip on a mock I2C bus. `write` is one write transaction (register address first for
/// register chips); `read` one read transaction, after any write of the same
/// `write_read`. Errors beyond NACK/timeout (which the bus models from the scene) are the
/// model's own (a chip that refuses a command).
pub trait I2cModel: Send {
    /// What it models, for status (`"bme280"`, `"pcf8574+hd44780"`).
    fn model(&self) -> &'static str;
    fn write(&mut self, bytes: &[u8], scene: &SceneData) -> Result<(), BusError>;
    fn read(&mut self, buf: &mut [u8], scene: &SceneData) -> Result<(), BusError>;
    /// What the model shows or holds, for status and tests (a display's text).
    fn state(&self) -> Json {
        Json::Null
    }
}

/// A chip on a mock SPI chip select: one full-duplex transaction at a time.
pub trait SpiModel: Send {
    fn model(&self) -> &'static str;
    fn transfer(&mut self, tx: &[u8], rx: &mut [u8], scene: &SceneData) -> Result<(), BusError>;
    fn state(&self) -> Json {
        Json::Null
    }
}

/// A chip whose interface is a register file (most sensors): one implementation serves
/// both buses through [`I2cRegisters`] and [`SpiRegisters`].
pub trait RegisterModel: Send {
    fn model(&self) -> &'static str;
    /// Called at the start of every transaction, so the model can follow the scene and
    /// its own clock (a conversion that finishes).
    fn refresh(&mut self, _device: &str, _scene: &SceneData) {}
    fn read_reg(&mut self, reg: u8) -> u8;
    fn write_reg(&mut self, reg: u8, value: u8);
    fn state(&self) -> Json {
        Json::Null
    }
}

/// A register chip on I2C: a write sets the register pointer (and writes the bytes after
/// it as register/value pairs, as Bosch sensors take them); a read auto-increments.
pub struct I2cRegisters<R> {
    pub chip: R,
    device: String,
    pointer: u8,
}

impl<R: RegisterModel> I2cRegisters<R> {
    pub fn new(chip: R, device: String) -> I2cRegisters<R> {
        I2cRegisters {
            chip,
            device,
            pointer: 0,
        }
    }
}

impl<R: RegisterModel> I2cModel for I2cRegisters<R> {
    fn model(&self) -> &'static str {
        self.chip.model()
    }

    fn write(&mut self, bytes: &[u8], scene: &SceneData) -> Result<(), BusError> {
        self.chip.refresh(&self.device, scene);
        let Some((&first, rest)) = bytes.split_first() else {
            return Ok(());
        };
        self.pointer = first;
        // Bosch's multi-byte write: reg, value, reg, value, ...
        let mut reg = first;
        for pair in rest.chunks(2) {
            self.chip.write_reg(reg, pair[0]);
            match pair.get(1) {
                Some(&next) => reg = next,
                None => break,
            }
        }
        Ok(())
    }

    fn read(&mut self, buf: &mut [u8], scene: &SceneData) -> Result<(), BusError> {
        self.chip.refresh(&self.device, scene);
        for b in buf.iter_mut() {
            *b = self.chip.read_reg(self.pointer);
            self.pointer = self.pointer.wrapping_add(1);
        }
        Ok(())
    }

    fn state(&self) -> Json {
        self.chip.state()
    }
}

/// A register chip on SPI: the first byte is the register address, bit 7 set for a read
/// (the chip then shifts out successive registers), clear for a write (then pairs of
/// value, next address), as the BME280's datasheet, section 6.3, describes.
pub struct SpiRegisters<R> {
    pub chip: R,
    device: String,
}

impl<R: RegisterModel> SpiRegisters<R> {
    pub fn new(chip: R, device: String) -> SpiRegisters<R> {
        SpiRegisters { chip, device }
    }
}

impl<R: RegisterModel> SpiModel for SpiRegisters<R> {
    fn model(&self) -> &'static str {
        self.chip.model()
    }

    fn transfer(&mut self, tx: &[u8], rx: &mut [u8], scene: &SceneData) -> Result<(), BusError> {
        self.chip.refresh(&self.device, scene);
        rx.fill(0xff);
        let Some(&first) = tx.first() else {
            return Ok(());
        };
        if first & 0x80 != 0 {
            let mut reg = first;
            for b in rx.iter_mut().skip(1) {
                *b = self.chip.read_reg(reg);
                reg = reg.wrapping_add(1);
            }
        } else {
            // On SPI the register address has bit 7 cleared; the chip's own address
            // (as I2C sees it) has it set again.
            let mut i = 0;
            while i + 1 < tx.len() {
                self.chip.write_reg(tx[i] | 0x80, tx[i + 1]);
                i += 2;
            }
        }
        Ok(())
    }

    fn state(&self) -> Json {
        self.chip.state()
    }
}

/// A mock I2C bus: the models attached at their addresses, and the scene that can unplug
/// them. A transaction to an address with no model (or an absent one) is a NACK.
pub struct MockI2c {
    name: String,
    scene: Arc<Scene>,
    devices: Mutex<Vec<(u8, Box<dyn I2cModel>)>>,
}

impl MockI2c {
    pub fn new(bus: u8, scene: Arc<Scene>) -> MockI2c {
        MockI2c {
            name: format!("i2c-{bus}"),
            scene,
            devices: Mutex::new(Vec::new()),
        }
    }

    /// Put `model` at `addr` (replacing whatever was there).
    pub fn attach(&self, addr: u8, model: Box<dyn I2cModel>) {
        let mut d = self.devices.lock().unwrap_or_else(|e| e.into_inner());
        d.retain(|(a, _)| *a != addr);
        d.push((addr, model));
    }

    /// Run `f` on the model at `addr` (tests inspect a display this way).
    pub fn with_model<T>(&self, addr: u8, f: impl FnOnce(&mut dyn I2cModel) -> T) -> Option<T> {
        let mut d = self.devices.lock().unwrap_or_else(|e| e.into_inner());
        d.iter_mut()
            .find(|(a, _)| *a == addr)
            .map(|(_, m)| f(m.as_mut()))
    }

    /// Each attached model with its address and state, for status.
    pub fn json(&self) -> Vec<Json> {
        let d = self.devices.lock().unwrap_or_else(|e| e.into_inner());
        d.iter()
            .map(|(a, m)| {
                let device = format!("{}:0x{a:02x}", self.name);
                json!({ "device": device, "model": m.model(), "state": m.state(),
                        "absent": self.scene.current().absent(&device) })
            })
            .collect()
    }

    fn transact(
        &self,
        addr: u8,
        f: impl FnOnce(&mut dyn I2cModel, &SceneData) -> Result<(), BusError>,
    ) -> Result<(), BusError> {
        let scene = self.scene.current();
        let device = format!("{}:0x{addr:02x}", self.name);
        if scene.times_out(&device) {
            return Err(BusError::Timeout {
                bus: self.name.clone(),
            });
        }
        let nack = BusError::Nack {
            bus: self.name.clone(),
            addr,
        };
        if scene.absent(&device) {
            return Err(nack);
        }
        let mut d = self.devices.lock().unwrap_or_else(|e| e.into_inner());
        match d.iter_mut().find(|(a, _)| *a == addr) {
            Some((_, m)) => f(m.as_mut(), &scene),
            None => Err(nack),
        }
    }
}

impl I2cBus for MockI2c {
    fn backend(&self) -> &'static str {
        "mock"
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn write(&self, addr: u8, bytes: &[u8]) -> Result<(), BusError> {
        self.transact(addr, |m, s| m.write(bytes, s))
    }

    fn write_read(&self, addr: u8, wr: &[u8], rd: &mut [u8]) -> Result<(), BusError> {
        self.transact(addr, |m, s| {
            m.write(wr, s)?;
            m.read(rd, s)
        })
    }

    fn mock(&self) -> Option<&MockI2c> {
        Some(self)
    }
}

/// A mock SPI chip select: at most one model; with none (or absent) every byte reads
/// 0xff, as a floating MISO line does.
pub struct MockSpi {
    name: String,
    scene: Arc<Scene>,
    model: Mutex<Option<Box<dyn SpiModel>>>,
}

impl MockSpi {
    pub fn new(bus: u8, cs: u8, scene: Arc<Scene>) -> MockSpi {
        MockSpi {
            name: format!("spi-{bus}.{cs}"),
            scene,
            model: Mutex::new(None),
        }
    }

    pub fn attach(&self, model: Box<dyn SpiModel>) {
        *self.model.lock().unwrap_or_else(|e| e.into_inner()) = Some(model);
    }

    pub fn json(&self) -> Option<Json> {
        let m = self.model.lock().unwrap_or_else(|e| e.into_inner());
        m.as_ref().map(|m| {
            json!({ "device": self.name, "model": m.model(), "state": m.state(),
                    "absent": self.scene.current().absent(&self.name) })
        })
    }
}

impl SpiDevice for MockSpi {
    fn backend(&self) -> &'static str {
        "mock"
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn transfer(&self, tx: &[u8], rx: &mut [u8]) -> Result<(), BusError> {
        let scene = self.scene.current();
        if scene.times_out(&self.name) {
            return Err(BusError::Timeout {
                bus: self.name.clone(),
            });
        }
        rx.fill(0xff);
        if scene.absent(&self.name) {
            return Ok(());
        }
        let mut m = self.model.lock().unwrap_or_else(|e| e.into_inner());
        match m.as_mut() {
            Some(m) => m.transfer(tx, rx, &scene),
            None => Ok(()),
        }
    }

    fn mock(&self) -> Option<&MockSpi> {
        Some(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 256 plain registers; 0xd0 reads 0x60 (a BME280's id).
    struct Regs([u8; 256]);
    impl RegisterModel for Regs {
        fn model(&self) -> &'static str {
            "regs"
        }
        fn read_reg(&mut self, reg: u8) -> u8 {
            self.0[reg as usize]
        }
        fn write_reg(&mut self, reg: u8, value: u8) {
            self.0[reg as usize] = value;
        }
    }

    fn regs() -> Regs {
        let mut r = [0u8; 256];
        r[0xd0] = 0x60;
        Regs(r)
    }

    #[test]
    fn registers_read_and_write_alike_over_both_buses() {
        use super::super::bus::Registers;
        let scene = Arc::new(Scene::new(std::path::Path::new("")));
        let i2c = Arc::new(MockI2c::new(1, scene.clone()));
        i2c.attach(
            0x76,
            Box::new(I2cRegisters::new(regs(), "i2c-1:0x76".into())),
        );
        let spi = Arc::new(MockSpi::new(0, 0, scene));
        spi.attach(Box::new(SpiRegisters::new(regs(), "spi-0.0".into())));
        for r in [
            Registers::I2c {
                bus: i2c.clone(),
                addr: 0x76,
            },
            Registers::Spi(spi.clone()),
        ] {
            let mut id = [0u8; 1];
            r.read(0xd0, &mut id).unwrap();
            assert_eq!(id[0], 0x60, "{}", r.device_name());
            r.write(0xf4, 0x27).unwrap();
            let mut two = [0u8; 2];
            r.read(0xf3, &mut two).unwrap();
            assert_eq!(two, [0, 0x27]);
            let mut long = [0u8; 40];
            r.read(0xd0, &mut long).unwrap();
            assert_eq!(long[0], 0x60);
            assert_eq!(long[0xf4 - 0xd0], 0x27);
        }
        // Nothing at 0x77: a NACK naming the bus and address.
        let e = Registers::I2c {
            bus: i2c,
            addr: 0x77,
        }
        .read(0xd0, &mut [0])
        .unwrap_err();
        assert_eq!(e.to_string(), "i2c-1: no device answers at 0x77 (NACK)");
    }
}
