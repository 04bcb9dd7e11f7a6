//! The smallest Ferrosphere high-level app. Built for `wasm32-wasip2`, it is a WebAssembly
//! component; the device runtime gives it a log stream on standard output and nothing else,
//! because its manifest asks for nothing else.

fn main() {
    println!("Hello from a Ferrosphere high-level app");
}
