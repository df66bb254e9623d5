//! Takes `wasi:sockets` out of a component's imports by plugging them with a component whose
//! every function traps.
//!
//! componentize-py links CPython against a WASI libc that imports `wasi:sockets` whether or not
//! the plugin opens a socket, and the host refuses any component importing sockets (plugins reach
//! the network only through `ucms:host/http-client`). The stub is made from the component's own
//! description of those imports (so it matches their exact version and functions): a world
//! exporting them, a core module whose exports are `unreachable` (`wit_component::dummy_module`),
//! encoded as a component and plugged into the plugin with `wac-graph`. The result imports no
//! socket interface; a plugin that tries to open a socket traps.

use anyhow::{Context, bail};
use wac_graph::types::Package;
use wac_graph::{CompositionGraph, EncodeOptions};
use wit_component::{ComponentEncoder, DecodedWasm, StringEncoding};
use wit_parser::{ManglingAndAbi, WorldItem, WorldKey};

/// The package whose imports are replaced.
const SOCKETS: &str = "wasi:sockets/";

/// The component with its `wasi:sockets` imports satisfied by trapping stubs; unchanged (and
/// `false`) when it imports none.
pub fn deny_sockets(component: &[u8]) -> anyhow::Result<(Vec<u8>, bool)> {
    let DecodedWasm::Component(mut resolve, world) =
        wit_component::decode(component).context("cannot read the component's interfaces")?
    else {
        bail!("expected a component, found a WIT package");
    };
    let mut sockets = Vec::new();
    for (key, item) in &resolve.worlds[world].imports {
        if let (WorldKey::Interface(id), WorldItem::Interface { .. }) = (key, item)
            && let Some(name) = resolve.id_of(*id)
            && name.starts_with(SOCKETS)
        {
            sockets.push(name);
        }
    }
    if sockets.is_empty() {
        return Ok((component.to_vec(), false));
    }
    let mut text = String::from("package ucms:deny-sockets;\n\nworld deny {\n");
    for name in &sockets {
        text.push_str(&format!("    export {name};\n"));
    }
    text.push_str("}\n");
    let package = resolve
        .push_str("deny-sockets.wit", &text)
        .context("cannot describe the socket stubs")?;
    let stub_world = resolve.select_world(&[package], Some("deny"))?;
    let mut module = wit_component::dummy_module(&resolve, stub_world, ManglingAndAbi::Standard32);
    wit_component::embed_component_metadata(
        &mut module,
        &resolve,
        stub_world,
        StringEncoding::UTF8,
    )?;
    let stub = ComponentEncoder::default()
        .validate(true)
        .module(&module)?
        .encode()
        .context("cannot encode the socket stubs")?;

    let mut graph = CompositionGraph::new();
    let plugin = Package::from_bytes("plugin", None, component.to_vec(), graph.types_mut())?;
    let plugin = graph.register_package(plugin)?;
    let stub = Package::from_bytes("deny-sockets", None, stub, graph.types_mut())?;
    let stub = graph.register_package(stub)?;
    wac_graph::plug(&mut graph, vec![stub], plugin).context("cannot plug the socket stubs")?;
    let composed = graph
        .encode(EncodeOptions::default())
        .context("cannot encode the composed component")?;
    Ok((composed, true))
}
