//! Hostile guest: its manifest grants GPIO 8 only; it reaches for other pins.

use applibs::gpio::{self, InputPin, Level, OutputPin};

fn report<T>(what: &str, result: Result<T, applibs::Error>) {
    match result {
        Ok(_) => println!("attempt {what}: ALLOWED"),
        Err(error) => println!("attempt {what}: {error}"),
    }
}

fn main() {
    let led = OutputPin::open(8, Level::High);
    report("open 8", led.as_ref().map(|_| ()).map_err(Clone::clone));
    report("open 9", OutputPin::open(9, Level::Low));
    report("open button 12", InputPin::open(12));
    report("open 4294967295", OutputPin::open(u32::MAX, Level::Low));
    report(
        "batch set 8+9",
        gpio::set_many(&[(8, Level::Low), (9, Level::Low)]),
    );
    report("batch read 12", gpio::read_many(&[12]));
    println!("done");
}
