//! Test fixture: a real store in a temp dir, a registry, the mock GPIO and (optionally)
//! MQTT channels, wrapped in a [`ToolContext`].

use std::sync::{Arc, Mutex};

use super::{MqttTools, ToolContext};
use crate::config::settings::Settings;
use crate::edges::gpio::mock::MockGpio;
use crate::graph::registry::Registry;
use crate::graph::{Item, Micros, Reading, Value, ValueKind};
use crate::messages::{PublishRx, Recent, publish_queue};
use crate::store::tests::TempDir;
use crate::store::{Store, StoreOptions};

pub(crate) struct Fixture {
    pub ctx: ToolContext,
    pub store: Arc<Store>,
    pub registry: Arc<Registry>,
    pub gpio: Arc<MockGpio>,
    _dir: TempDir,
}

impl Fixture {
    /// Pins 17 door (input, pull down), 27 button (input, pull up), 22 fan (output,
    /// starts high), 23 led (output, starts low); no MQTT.
    pub fn new(tag: &str) -> Fixture {
        let dir = TempDir::new(&format!("tools-{tag}"));
        let store = Arc::new(Store::open(&dir.0, &StoreOptions { map_size: 16 << 20 }).unwrap());
        let registry = Arc::new(Registry::new());
        let mut settings = Settings::defaults();
        settings.gpio = crate::edges::gpio::mock::tests::settings();
        let gpio = Arc::new(MockGpio::new(&settings.gpio));
        let ctx = ToolContext {
            settings: settings.clone(),
            store: store.clone(),
            registry: registry.clone(),
            gpio: gpio.clone(),
            hardware: Arc::new(crate::edges::hw::Hardware::new(&settings.hardware)),
            retention: None,
            mqtt: None,
            embedder: None,
            trusted: false,
            stats: Default::default(),
            stopping: Default::default(),
            events: None,
            node_events: None,
        };
        Fixture {
            ctx,
            store,
            registry,
            gpio,
            _dir: dir,
        }
    }

    /// Attach MQTT channels; returns the receiving end of the publish queue.
    pub fn with_mqtt(&mut self, cap: usize) -> (PublishRx, Arc<Mutex<Recent>>) {
        let (tx, rx) = publish_queue(cap, 1 << 20);
        let recent = Arc::new(Mutex::new(Recent::default()));
        self.ctx.mqtt = Some(MqttTools {
            publish: tx,
            recent: recent.clone(),
            prefix: "smollama/test-node".into(),
        });
        (rx, recent)
    }

    /// Store readings of one source (interning it first).
    pub fn write(&self, name: &str, unit: &str, kind: ValueKind, values: &[(Micros, Value)]) {
        let info = self.registry.intern(name, unit, kind);
        let items: Vec<Item> = values
            .iter()
            .map(|&(ts, v)| Item::Reading(Reading::new(info.id, ts, v)))
            .collect();
        self.store
            .write_batch(&self.registry.take_unsaved(), &items)
            .unwrap();
    }
}
