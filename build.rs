//! Compiles `proto/externalscaler.proto` with the pure-Rust `protox` compiler, so no system
//! `protoc` is needed anywhere (developer machines, CI, the container build).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut protos = protox::Compiler::new(["proto"])?;
    protos.include_imports(true).include_source_info(true);
    protos.open_files(["externalscaler.proto"])?;

    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(protos.file_descriptor_set())?;

    println!("cargo:rerun-if-changed=proto");
    Ok(())
}
