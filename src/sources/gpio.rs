//! The `gpio` source: configured pins as boolean readings `gpio:<pin>`.
pub struct GpioSource;
impl GpioSource {
    pub fn new(
        _b: std::sync::Arc<dyn crate::edges::gpio::GpioBackend>,
        _p: &[crate::config::settings::PinConfig],
        _every: crate::graph::Micros,
        _r: &crate::graph::registry::Registry,
    ) -> GpioSource {
        GpioSource
    }
    pub async fn run(self, _ctx: super::SourceCtx) {}
}
