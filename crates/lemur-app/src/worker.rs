//! The CPU backend on a worker thread (native only). CPU tensors run their ops on the calling
//! thread, so a slice of work (one sampler step of the whole ensemble) would hold the UI for
//! tens of milliseconds; here the solver and the rollout run on their own thread and send
//! host copies of each frame, which the UI keeps in a mirror [`Sim`] it draws from as usual.
//! Tensors hold `Rc`s and never cross threads: the worker builds its own models from the
//! parsed runs.

use std::sync::mpsc::{Receiver, Sender, TryRecvError, channel};
use std::thread::JoinHandle;

use lemur_tensor::{CpuBackend, Tensor};

use crate::app::Sim;
use crate::bundle::Bundle;
use crate::engine::{Frame, Models, Scores, Settings, Timings};
use crate::error::Result;

/// Host copy of one emulated frame.
struct FrameHost {
    t: usize,
    shape: [Vec<usize>; 2],
    members: Vec<f32>,
    mean: Vec<f32>,
    spread: Vec<f32>,
    truth: Option<Vec<f32>>,
    error: Option<Vec<f32>>,
    scores: Option<Scores>,
}

enum Update {
    Frame(Box<FrameHost>),
    Truth {
        from: usize,
        frames: Vec<Vec<f32>>,
        busy_s: f64,
        computed: usize,
    },
    Timings(Timings),
    Done,
    Error(String),
}

/// The worker thread and its channels; updates are tagged with the rollout they belong to.
pub struct Worker {
    commands: Sender<(u64, Settings)>,
    updates: Receiver<(u64, Update)>,
    generation: u64,
    _thread: JoinHandle<()>,
}

fn host(t: &Tensor<CpuBackend>) -> Vec<f32> {
    t.storage().as_ref().clone()
}

fn run(
    bundle: Bundle,
    first: Settings,
    commands: Receiver<(u64, Settings)>,
    out: Sender<(u64, Update)>,
) {
    let mut generation = 0;
    let fail = |generation, e: crate::AppError| {
        let _ = out.send((generation, Update::Error(e.to_string())));
    };
    let mut sim = match Models::new(CpuBackend, &bundle).and_then(|m| Sim::new(m, first)) {
        Ok(s) => s,
        Err(e) => return fail(0, e),
    };
    // Per frame: (sent at all, with truth, with scores); truth frames sent.
    let mut sent: Vec<(bool, bool, bool)> = Vec::new();
    let mut truth_sent = 0;
    let mut finished = false;
    loop {
        let next = if finished {
            // Idle until the UI asks for another rollout (or goes away).
            commands.recv().map_err(|_| TryRecvError::Disconnected)
        } else {
            commands.try_recv()
        };
        match next {
            Ok((g, settings)) => {
                generation = g;
                if let Err(e) = sim.restart(settings) {
                    fail(generation, e);
                    finished = true;
                    continue;
                }
                sent.clear();
                truth_sent = 0;
                finished = false;
                continue;
            }
            Err(TryRecvError::Disconnected) => return,
            Err(TryRecvError::Empty) => {}
        }
        let r: Result<()> = (|| {
            sim.advance(0.05)?;
            if sim.truth.frames.len() > truth_sent {
                let from = truth_sent;
                let frames = sim.truth.frames[from..].to_vec();
                truth_sent = sim.truth.frames.len();
                let busy_s = sim.truth.busy_s;
                let computed = sim.truth.computed();
                let update = Update::Truth {
                    from,
                    frames,
                    busy_s,
                    computed,
                };
                let _ = out.send((generation, update));
            }
            for (t, f) in sim.job.frames.iter().enumerate() {
                let state = (true, f.truth.is_some(), f.scores.is_some());
                if sent.get(t) == Some(&state) {
                    continue;
                }
                if sent.len() <= t {
                    sent.resize(t + 1, (false, false, false));
                }
                sent[t] = state;
                let frame = FrameHost {
                    t,
                    shape: [f.members.shape().to_vec(), f.mean.shape().to_vec()],
                    members: host(&f.members),
                    mean: host(&f.mean),
                    spread: host(&f.spread),
                    truth: f.truth.as_ref().map(host),
                    error: f.error.as_ref().map(host),
                    scores: f.scores.clone(),
                };
                let _ = out.send((generation, Update::Frame(Box::new(frame))));
            }
            let _ = out.send((generation, Update::Timings(sim.job.timings.clone())));
            let scored = sim.job.frames.iter().all(|f| f.scores.is_some());
            if sim.job.done() && sim.truth.done() && scored {
                let _ = out.send((generation, Update::Done));
                finished = true;
            }
            Ok(())
        })();
        if let Err(e) = r {
            fail(generation, e);
            finished = true;
        }
    }
}

impl Worker {
    pub fn spawn(bundle: Bundle, settings: Settings) -> Self {
        let (commands, command_rx) = channel();
        let (update_tx, updates) = channel();
        let thread = std::thread::Builder::new()
            .name("lemur emulator".into())
            .spawn(move || run(bundle, settings, command_rx, update_tx))
            .expect("a thread can be started");
        Self {
            commands,
            updates,
            generation: 0,
            _thread: thread,
        }
    }

    /// Starts another rollout on the worker (the mirror restarts separately).
    pub fn restart(&mut self, settings: Settings) {
        self.generation += 1;
        let _ = self.commands.send((self.generation, settings));
    }

    /// Applies the worker's updates for the current rollout to `mirror`.
    pub fn drain(&mut self, mirror: &mut Sim<CpuBackend>) -> Result<()> {
        let be = CpuBackend;
        while let Ok((g, u)) = self.updates.try_recv() {
            if g != self.generation {
                continue;
            }
            match u {
                Update::Frame(f) => {
                    let frame = Frame {
                        members: Tensor::from_slice(&be, &f.members, &f.shape[0])?,
                        mean: Tensor::from_slice(&be, &f.mean, &f.shape[1])?,
                        spread: Tensor::from_slice(&be, &f.spread, &f.shape[1])?,
                        truth: f
                            .truth
                            .map(|v| Tensor::from_slice(&be, &v, &f.shape[1]))
                            .transpose()?,
                        error: f
                            .error
                            .map(|v| Tensor::from_slice(&be, &v, &f.shape[1]))
                            .transpose()?,
                        scores: f.scores,
                    };
                    let frames = &mut mirror.job.frames;
                    if f.t < frames.len() {
                        frames[f.t] = frame;
                    } else {
                        frames.push(frame);
                    }
                }
                Update::Truth {
                    from,
                    frames,
                    busy_s,
                    computed,
                } => mirror.truth.mirror(from, frames, busy_s, computed),
                Update::Timings(t) => mirror.job.timings = t,
                Update::Done => mirror.job.mark_done(),
                Update::Error(e) => {
                    return Err(crate::AppError::Setting {
                        name: "rollout",
                        value: "worker".into(),
                        detail: e,
                    });
                }
            }
        }
        Ok(())
    }
}
