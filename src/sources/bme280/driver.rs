//! The BME280/BMP280 driver: the same code over I2C or SPI (`Registers`), on a Pi or
//! against the mock chip. Blocking (it sleeps for the conversion): it runs on the `hw`
//! thread only.

use std::time::Duration;

use super::compensate::Calib;
use super::model::{BME280_ID, BMP280_ID};
use crate::edges::hw::{BusError, Registers};

/// Which chip the node expects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Chip {
    Bme280,
    Bmp280,
    /// Whichever answers (by its chip id).
    Auto,
}

/// One measurement, compensated.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Measured {
    /// °C.
    pub temperature: f64,
    /// hPa.
    pub pressure: f64,
    /// %RH; `None` on a BMP280.
    pub humidity: Option<f64>,
}

/// How many times the status is polled after the datasheet's maximum conversion time
/// before the measurement counts as hung.
const POLLS: u32 = 50;
const POLL: Duration = Duration::from_millis(1);

/// A chip that answered its id and whose calibration has been read: what `sample` needs.
/// Built again (`open`) after any bus error, since the device may have been swapped.
pub(crate) struct Bme280 {
    regs: Registers,
    humidity: bool,
    calib: Calib,
    /// osrs bits (1 = ×1 ... 5 = ×16) for temperature, pressure and humidity alike.
    osrs: u8,
}

impl Bme280 {
    /// Check the chip id, soft-reset, wait for the NVM copy and read the calibration.
    pub fn open(regs: Registers, chip: Chip, osrs: u8) -> Result<Bme280, BusError> {
        let mut id = [0u8; 1];
        regs.read(0xd0, &mut id)?;
        let humidity = match (chip, id[0]) {
            (Chip::Bme280 | Chip::Auto, BME280_ID) => true,
            // 0x56 and 0x57 are BMP280 engineering samples.
            (Chip::Bmp280 | Chip::Auto, BMP280_ID | 0x56 | 0x57) => false,
            (want, got) => {
                let expected = match want {
                    Chip::Bme280 => "a BME280 (0x60)".to_string(),
                    Chip::Bmp280 => "a BMP280 (0x58)".to_string(),
                    Chip::Auto => "a BME280 (0x60) or BMP280 (0x58)".to_string(),
                };
                return Err(BusError::Device(format!(
                    "{}: chip id 0x{got:02x} is not {expected}",
                    regs.device_name()
                )));
            }
        };
        regs.write(0xe0, 0xb6)?;
        std::thread::sleep(Duration::from_millis(2));
        let mut status = [0u8; 1];
        for _ in 0..POLLS {
            regs.read(0xf3, &mut status)?;
            if status[0] & 0x01 == 0 {
                break;
            }
            std::thread::sleep(POLL);
        }
        let mut tp = [0u8; 26];
        regs.read(0x88, &mut tp)?;
        let mut h = [0u8; 7];
        if humidity {
            regs.read(0xe1, &mut h)?;
        }
        let calib = Calib::from_registers(&tp, &h);
        if calib.t1 == 0 || calib.p1 == 0 {
            return Err(BusError::Device(format!(
                "{}: calibration reads as zeros (a chip that is not a BME280/BMP280, or a bad bus)",
                regs.device_name()
            )));
        }
        // Filter off, standby irrelevant in forced mode.
        regs.write(0xf5, 0x00)?;
        Ok(Bme280 {
            regs,
            humidity,
            calib,
            osrs,
        })
    }

    #[cfg(test)]
    pub fn has_humidity(&self) -> bool {
        self.humidity
    }

    #[cfg(test)]
    pub fn calib(&self) -> &Calib {
        &self.calib
    }

    /// One forced-mode measurement: start it, wait for the status to clear, read the
    /// data registers in one burst (so the values belong together) and compensate.
    pub fn sample(&self) -> Result<Measured, BusError> {
        let os = self.osrs;
        if self.humidity {
            // ctrl_hum takes effect only with the ctrl_meas write that follows.
            self.regs.write(0xf2, os)?;
        }
        self.regs.write(0xf4, (os << 5) | (os << 2) | 0x01)?;
        std::thread::sleep(max_conversion(os, self.humidity));
        let mut status = [0u8; 1];
        let mut done = false;
        for _ in 0..POLLS {
            self.regs.read(0xf3, &mut status)?;
            if status[0] & 0x08 == 0 {
                done = true;
                break;
            }
            std::thread::sleep(POLL);
        }
        if !done {
            return Err(BusError::Device(format!(
                "{}: the measurement did not finish (status stays 'measuring')",
                self.regs.device_name()
            )));
        }
        let mut d = [0u8; 8];
        let n = if self.humidity { 8 } else { 6 };
        self.regs.read(0xf7, &mut d[..n])?;
        let adc_p = raw20(&d[0..3]);
        let adc_t = raw20(&d[3..6]);
        if adc_t == 0x80000 || adc_p == 0x80000 {
            return Err(BusError::Device(format!(
                "{}: the chip returned no measurement (data registers hold their reset value)",
                self.regs.device_name()
            )));
        }
        let t_fine = self.calib.t_fine(adc_t);
        let pressure = self.calib.pressure(t_fine, adc_p).ok_or_else(|| {
            BusError::Device(format!(
                "{}: calibration gives no pressure (dig_P1 is 0)",
                self.regs.device_name()
            ))
        })?;
        let humidity = self.humidity.then(|| {
            let adc_h = u16::from_be_bytes([d[6], d[7]]) as i32;
            self.calib.humidity(t_fine, adc_h) as f64 / 1024.0
        });
        Ok(Measured {
            temperature: Calib::temperature(t_fine) as f64 / 100.0,
            pressure: pressure as f64 / 25600.0,
            humidity,
        })
    }
}

fn raw20(b: &[u8]) -> i32 {
    ((b[0] as i32) << 12) | ((b[1] as i32) << 4) | ((b[2] as i32) >> 4)
}

/// The datasheet's maximum measurement time (§9.1) with every measurement at `osrs`.
fn max_conversion(osrs: u8, humidity: bool) -> Duration {
    let n = (1u32 << (osrs.clamp(1, 5) - 1)) as f64;
    let phases = if humidity { 2.0 } else { 1.0 };
    let ms = 1.25 + 2.3 * n + phases * (2.3 * n + 0.575);
    Duration::from_micros((ms * 1000.0) as u64)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::super::model::{Bme280Model, CALIB};
    use super::*;
    use crate::edges::hw::mock::{I2cRegisters, MockI2c, MockSpi, SpiRegisters};
    use crate::edges::hw::scene::Scene;

    struct World {
        _dir: std::path::PathBuf,
        scene_file: std::path::PathBuf,
        scene: Arc<Scene>,
    }

    impl World {
        fn new(tag: &str) -> World {
            let dir =
                std::env::temp_dir().join(format!("smollama-bme-{tag}-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            let scene_file = dir.join("scene.toml");
            std::fs::write(&scene_file, "").unwrap();
            World {
                scene: Arc::new(Scene::new(&scene_file)),
                scene_file,
                _dir: dir,
            }
        }

        /// Rewrite the scene (the size changes with the text, so the cache sees it).
        fn set(&self, text: &str) {
            std::fs::write(&self.scene_file, text).unwrap();
        }
    }

    impl Drop for World {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self._dir);
        }
    }

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    /// The driver against the mock chip over I2C and over SPI: the id, the calibration
    /// as the chip holds it, and values that follow the scene.
    #[test]
    fn reads_the_scene_back_over_i2c_and_spi() {
        let w = World::new("both");
        let i2c = Arc::new(MockI2c::new(1, w.scene.clone()));
        i2c.attach(
            0x76,
            Box::new(I2cRegisters::new(
                Bme280Model::new(true),
                "i2c-1:0x76".into(),
            )),
        );
        let spi = Arc::new(MockSpi::new(0, 0, w.scene.clone()));
        spi.attach(Box::new(SpiRegisters::new(
            Bme280Model::new(true),
            "spi-0.0".into(),
        )));
        let buses = [
            Registers::I2c {
                bus: i2c.clone(),
                addr: 0x76,
            },
            Registers::Spi(spi.clone()),
        ];
        for (i, regs) in buses.into_iter().enumerate() {
            let name = regs.device_name();
            let d = Bme280::open(regs, Chip::Auto, 1).unwrap();
            assert!(d.has_humidity(), "{name}");
            assert_eq!(d.calib(), &CALIB, "{name}");
            w.set(&format!(
                "temperature = 23.4\nhumidity = 61.5\npressure = 998.7{}\n",
                "0".repeat(i)
            ));
            let m = d.sample().unwrap();
            assert!(close(m.temperature, 23.4, 0.011), "{name}: {m:?}");
            assert!(close(m.pressure, 998.7, 0.01), "{name}: {m:?}");
            assert!(close(m.humidity.unwrap(), 61.5, 0.01), "{name}: {m:?}");
            // The room cools: the next sample follows.
            w.set(&format!("temperature = -5.25{}\n", "0".repeat(i)));
            let m = d.sample().unwrap();
            assert!(close(m.temperature, -5.25, 0.011), "{name}: {m:?}");
            assert!(
                close(m.humidity.unwrap(), 45.0, 0.01),
                "{name}: default {m:?}"
            );
        }
    }

    /// A chip slower than the datasheet's maximum: the driver polls the status until the
    /// conversion ends, never reading the data registers meanwhile (which would give the
    /// previous result).
    #[test]
    fn waits_for_the_status_before_reading_the_data() {
        let w = World::new("slow");
        let i2c = Arc::new(MockI2c::new(1, w.scene.clone()));
        let model = Bme280Model::new(true).slower(Duration::from_millis(20));
        i2c.attach(
            0x77,
            Box::new(I2cRegisters::new(model, "i2c-1:0x77".into())),
        );
        let regs = Registers::I2c {
            bus: i2c.clone(),
            addr: 0x77,
        };
        let d = Bme280::open(regs, Chip::Bme280, 1).unwrap();
        w.set("temperature = 10.0\n");
        assert!(close(d.sample().unwrap().temperature, 10.0, 0.011));
        w.set("temperature = 30.00\n");
        assert!(close(d.sample().unwrap().temperature, 30.0, 0.011));
        let early = i2c
            .with_model(0x77, |m| m.state()["early_reads"].as_u64())
            .flatten();
        assert_eq!(early, Some(0));
    }

    #[test]
    fn a_bmp280_has_no_humidity_and_a_wrong_chip_is_named() {
        let w = World::new("bmp");
        let i2c = Arc::new(MockI2c::new(1, w.scene.clone()));
        i2c.attach(
            0x76,
            Box::new(I2cRegisters::new(
                Bme280Model::new(false),
                "i2c-1:0x76".into(),
            )),
        );
        let regs = || Registers::I2c {
            bus: i2c.clone(),
            addr: 0x76,
        };
        let d = Bme280::open(regs(), Chip::Auto, 2).unwrap();
        w.set("pressure = 1020.5\n");
        let m = d.sample().unwrap();
        assert_eq!(m.humidity, None);
        assert!(close(m.pressure, 1020.5, 0.01), "{m:?}");
        // Asked for a BME280, a BMP280 answers.
        let e = Bme280::open(regs(), Chip::Bme280, 1).err().unwrap();
        assert_eq!(
            e.to_string(),
            "i2c-1:0x76: chip id 0x58 is not a BME280 (0x60)"
        );
        // Some other chip at the address.
        w.set("chip_id = 0x55\n");
        let e = Bme280::open(regs(), Chip::Auto, 1).err().unwrap();
        assert_eq!(
            e.to_string(),
            "i2c-1:0x76: chip id 0x55 is not a BME280 (0x60) or BMP280 (0x58)"
        );
        // Unplugged.
        w.set("absent = [\"i2c-1:0x76\"]\n");
        let e = d.sample().unwrap_err();
        assert_eq!(e.to_string(), "i2c-1: no device answers at 0x76 (NACK)");
    }
}
