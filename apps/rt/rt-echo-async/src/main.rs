//! rt-echo on an async executor (embassy-executor, thread mode): the RTOS-style model Azure
//! Sphere users know from FreeRTOS and ThreadX. One task answers each mailbox message with the
//! sender's component ID prefixed (as `rt-echo`), another logs a line and kicks the watchdog
//! every second. The executor sleeps (WFE) when no task is ready; the doorbell and the alarm
//! interrupts wake it.
//!
//! The time driver is this file's: `ferro_rt::time::now()` (SysTick, 25 MHz) as embassy's 1 MHz
//! clock, and a queue of up to 8 timers on `ferro_rt::time`'s one-shot alarm.
#![no_std]
#![no_main]

use core::cell::RefCell;
use core::future::poll_fn;
use core::sync::atomic::{AtomicU32, Ordering};
use core::task::{Poll, Waker};

use cortex_m::interrupt::Mutex;
use embassy_executor::Spawner;
use embassy_sync::waitqueue::AtomicWaker;
use embassy_time::{Duration, Ticker};
use ferro_rt::mailbox::prefixed_with_sender;
use ferro_rt::{
    MAX_PAYLOAD, Mailbox, Message, OrExit, RingCorrupt, SendError, log, time, watchdog,
};

static ANSWERED: AtomicU32 = AtomicU32::new(0);
static DOORBELL: AtomicWaker = AtomicWaker::new();

#[embassy_executor::main]
async fn main(spawner: Spawner) {
    let rt = ferro_rt::init();
    ferro_rt::mailbox::set_doorbell_hook(|| DOORBELL.wake());
    time::set_alarm_hook(on_alarm);
    log!("rt-echo-async ready");
    if spawner.spawn(heartbeat()).is_err() {
        ferro_rt::exit(2);
    }
    echo(rt.mailbox).await;
}

#[embassy_executor::task]
async fn heartbeat() {
    let mut ticker = Ticker::every(Duration::from_secs(1));
    loop {
        watchdog::kick();
        ticker.next().await;
        log!(
            "rt-echo-async: {} answered",
            ANSWERED.load(Ordering::Relaxed)
        );
    }
}

async fn echo(mut mailbox: Mailbox) -> ! {
    let mut buf = [0u8; MAX_PAYLOAD];
    let mut answer = [0u8; MAX_PAYLOAD];
    loop {
        let message = receive(&mut mailbox, &mut buf).await.or_exit("mailbox");
        let answer = prefixed_with_sender(&message.sender, &buf[..message.len], &mut answer);
        send(&mut mailbox, answer).await.or_exit("mailbox");
        ANSWERED.fetch_add(1, Ordering::Relaxed);
    }
}

/// The next message: registers for the doorbell, raises the waiting flag, looks again.
async fn receive(
    mailbox: &mut Mailbox,
    buf: &mut [u8; MAX_PAYLOAD],
) -> Result<Message, RingCorrupt> {
    poll_fn(|cx| {
        if let Some(m) = mailbox.try_receive(buf)? {
            mailbox.end_wait();
            return Poll::Ready(Ok(m));
        }
        DOORBELL.register(cx.waker());
        if !mailbox.prepare_wait()? {
            cx.waker().wake_by_ref();
        }
        Poll::Pending
    })
    .await
}

/// Sends, waiting for a free slot on a full ring.
async fn send(mailbox: &mut Mailbox, payload: &[u8]) -> Result<(), SendError> {
    poll_fn(|cx| match mailbox.try_send(payload) {
        Err(SendError::WouldBlock) => {
            DOORBELL.register(cx.waker());
            match mailbox.prepare_send_wait() {
                Ok(true) => Poll::Pending,
                Ok(false) => {
                    cx.waker().wake_by_ref();
                    Poll::Pending
                }
                Err(e) => Poll::Ready(Err(SendError::RingCorrupt { what: e.what })),
            }
        }
        other => {
            mailbox.end_send_wait();
            Poll::Ready(other)
        }
    })
    .await
}

/// A timer: when (embassy ticks), and whom to wake.
type Timer = Option<(u64, Waker)>;

/// embassy's time driver over ferro-rt's clock and alarm.
struct Driver {
    timers: Mutex<RefCell<[Timer; 8]>>,
}

const CYCLES_PER_TICK: u64 = time::TICKS_PER_SECOND / embassy_time_driver::TICK_HZ;

fn now_ticks() -> u64 {
    time::now().ticks() / CYCLES_PER_TICK
}

impl Driver {
    /// Wakes the expired timers and arms the alarm for the next one.
    fn service(&self) {
        let now = now_ticks();
        let next = cortex_m::interrupt::free(|cs| {
            let mut timers = self.timers.borrow(cs).borrow_mut();
            let mut next = u64::MAX;
            for slot in timers.iter_mut() {
                match slot {
                    Some((at, _)) if *at <= now => {
                        if let Some((_, waker)) = slot.take() {
                            waker.wake();
                        }
                    }
                    Some((at, _)) => next = next.min(*at),
                    None => {}
                }
            }
            next
        });
        if next != u64::MAX {
            time::set_alarm(time::Instant::from_ticks(next * CYCLES_PER_TICK));
        }
    }
}

impl embassy_time_driver::Driver for Driver {
    fn now(&self) -> u64 {
        now_ticks()
    }

    fn schedule_wake(&self, at: u64, waker: &Waker) {
        let queued = cortex_m::interrupt::free(|cs| {
            let mut timers = self.timers.borrow(cs).borrow_mut();
            if let Some(slot) = timers
                .iter_mut()
                .flatten()
                .find(|(_, w)| w.will_wake(waker))
            {
                slot.0 = slot.0.min(at);
                return true;
            }
            match timers.iter_mut().find(|s| s.is_none()) {
                Some(free) => {
                    *free = Some((at, waker.clone()));
                    true
                }
                None => false,
            }
        });
        if !queued {
            // More than 8 timers at once: poll again rather than lose a wake.
            waker.wake_by_ref();
        }
        self.service();
    }
}

embassy_time_driver::time_driver_impl!(static DRIVER: Driver = Driver { timers: Mutex::new(RefCell::new([const { None }; 8])) });

fn on_alarm() {
    DRIVER.service();
}
