//! `GET /api/nodes` and `GET /api/cluster/nodes` (the roadmap's name, the same answer):
//! every node this one knows from mDNS and MQTT, this node first, with role, addresses,
//! port, version, capabilities, first and last seen, how it was learned and its health.
//! Reads the node directory only (a lock and a copy), on `http-work`.

use super::HttpView;
use super::request::Call;
use super::response::{Reply, ok};
use crate::clock::now_us;

pub(crate) fn list(view: &HttpView, _: &Call) -> Reply {
    ok(view.nodes.to_json(now_us()))
}
