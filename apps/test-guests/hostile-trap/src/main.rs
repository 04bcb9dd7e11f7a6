//! Hostile guest: traps as soon as it starts (a crash loop).

fn main() {
    println!("about to trap");
    panic!("trap at start");
}
