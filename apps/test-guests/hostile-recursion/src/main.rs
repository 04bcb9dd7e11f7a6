//! Hostile guest: recurses without bound, with large frames.

// Unbounded on purpose: this guest exists to exhaust its stack.
#[allow(unconditional_recursion)]
fn recurse(depth: u64) -> u64 {
    let frame = std::hint::black_box([depth as u8; 256]);
    std::hint::black_box(recurse(std::hint::black_box(depth + 1))) + u64::from(frame[0])
}

fn main() {
    println!("recursing");
    println!("{}", recurse(0));
}
