//! The guest components the host's tests run, built from source by this crate's build script.
//!
//! Each constant names a guest: its compiled component and the folder holding its manifest.
//!
//! ```no_run
//! let wasm = ucms_test_components::HELLO.wasm_bytes();
//! let manifest = ucms_test_components::HELLO.manifest();
//! assert!(manifest.contains("id = \"hello\""));
//! # let _ = wasm;
//! ```

/// A guest plugin: its component and its source folder.
#[derive(Debug, Clone, Copy)]
pub struct Guest {
    pub name: &'static str,
    /// The compiled component.
    pub wasm: &'static str,
    /// The folder with `ucms-plugin.toml`.
    pub dir: &'static str,
}

impl Guest {
    pub fn wasm_bytes(&self) -> Vec<u8> {
        std::fs::read(self.wasm).unwrap_or_else(|e| panic!("cannot read {}: {e}", self.wasm))
    }

    /// The manifest text.
    pub fn manifest(&self) -> String {
        let path = std::path::Path::new(self.dir).join("ucms-plugin.toml");
        std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
    }
}

include!(concat!(env!("OUT_DIR"), "/guests.rs"));
