//! What an invocation knows about its plugin, shared by all of that plugin's invocations.

use std::sync::Arc;

use ucms_manifest::{Manifest, PluginId};

use super::health::Health;
use super::limits::{Limits, Quotas};
use crate::capabilities::PluginCapabilities;
use crate::metrics::PluginMetrics;
use crate::services::Services;

/// What an invocation knows about its plugin; shared by all its invocations.
pub struct PluginContext {
    pub id: PluginId,
    pub manifest: Manifest,
    pub limits: Limits,
    pub quotas: Quotas,
    pub services: Arc<Services>,
    pub caps: PluginCapabilities,
    /// This plugin's metric series, resolved once.
    pub metrics: PluginMetrics,
    /// Its failures and breaches, and quarantine when they pile up.
    pub health: Health,
    /// Its recent log lines on this node (the plugin's and the host's about it).
    pub log: Arc<super::logbook::PluginLog>,
}
