//! `Backend::counters`: exact dispatch, submission, synchronisation, upload and bind-group
//! counts for small known op sequences, on both backends.

mod common;

use lemur_tensor::backend::{Backend, Unary};
use lemur_tensor::cpu::CpuBackend;
use lemur_tensor::{OpCounters, Tensor};

/// Upload, two elementwise ops, one read: the same sequence on each backend.
fn two_ops_then_read<B: Backend>(b: &B) -> OpCounters {
    let before = b.counters();
    let x = b.upload(&[1.0, -2.0, 3.0]).unwrap();
    let y = b.unary(Unary::Neg, &x).unwrap();
    let z = b.unary(Unary::Square, &y).unwrap();
    assert_eq!(pollster::block_on(b.read(&z)).unwrap(), vec![1.0, 4.0, 9.0]);
    b.counters().since(&before)
}

#[test]
fn gpu_counts_dispatches_submissions_and_syncs() {
    let Some(g) = common::gpu() else { return };
    assert_eq!(
        two_ops_then_read(&g),
        OpCounters {
            dispatches: 2,
            submissions: 1,
            syncs: 1,
            uploads: 1,
            bind_groups: 2,
            paces: 0,
        }
    );
    // A sync with nothing recorded submits nothing but still waits for the GPU.
    let before = g.counters();
    pollster::block_on(g.sync()).unwrap();
    assert_eq!(
        g.counters() - before,
        OpCounters {
            syncs: 1,
            ..Default::default()
        }
    );
    // A fill, then work_done: one dispatch, one submission, one wait.
    let before = g.counters();
    let _f = g.fill(5, 1.0).unwrap();
    pollster::block_on(g.work_done()).unwrap();
    assert_eq!(
        g.counters().since(&before),
        OpCounters {
            dispatches: 1,
            submissions: 1,
            syncs: 1,
            uploads: 0,
            bind_groups: 1,
            paces: 0,
        }
    );
    // Clones share the counters.
    assert_eq!(g.clone().counters(), g.counters());
}

#[test]
fn gpu_flushes_once_the_uniform_arena_is_full() {
    let Some(g) = common::gpu() else { return };
    let x = g.upload(&[1.0]).unwrap();
    let before = g.counters();
    let mut y = x;
    // The uniform arena holds 4096 dispatches: the 4097th submits the first 4096.
    for _ in 0..4097 {
        y = g.unary(Unary::AddScalar(1.0), &y).unwrap();
    }
    assert_eq!(pollster::block_on(g.read(&y)).unwrap(), vec![4098.0]);
    let c = g.counters().since(&before);
    assert_eq!((c.dispatches, c.submissions, c.syncs), (4097, 2, 1));
}

#[test]
fn gpu_end_step_submits_and_waits_for_the_step_before() {
    let Some(g) = common::gpu() else { return };
    let x = g.upload(&[1.0, 2.0]).unwrap();
    let before = g.counters();
    let y = g.unary(Unary::Neg, &x).unwrap();
    g.end_step();
    // The first step has no step before it to wait for.
    let c = g.counters() - before;
    assert_eq!((c.submissions, c.paces, c.syncs), (1, 0, 0));
    let z = g.unary(Unary::Square, &y).unwrap();
    g.end_step();
    let c = g.counters() - before;
    assert_eq!((c.submissions, c.paces, c.syncs), (2, 1, 0));
    // Nothing recorded: nothing to submit, but the step before is still waited for once.
    g.end_step();
    g.end_step();
    let c = g.counters() - before;
    assert_eq!((c.submissions, c.paces, c.syncs), (2, 2, 0));
    assert_eq!(pollster::block_on(g.read(&z)).unwrap(), vec![1.0, 4.0]);
    let c = g.counters() - before;
    assert_eq!((c.dispatches, c.submissions, c.syncs), (2, 3, 1));
}

#[test]
fn cpu_counts_kernel_calls_and_reads() {
    let c = two_ops_then_read(&CpuBackend);
    assert_eq!(
        c,
        OpCounters {
            dispatches: 2,
            submissions: 0,
            syncs: 1,
            uploads: 1,
            bind_groups: 0,
            paces: 0,
        }
    );
    // Through the tensor layer: a reshape reaches no backend, an add is one kernel.
    let before = CpuBackend.counters();
    let t = Tensor::from_slice(&CpuBackend, &[1.0, 2.0, 3.0, 4.0], &[2, 2]).unwrap();
    let u = t.reshape(&[4]).unwrap();
    let _ = u.add(&u).unwrap();
    let c = CpuBackend.counters().since(&before);
    assert_eq!((c.uploads, c.dispatches, c.syncs), (1, 1, 0));
    // Ending a step on the CPU, where every op has already run, does nothing.
    let before = CpuBackend.counters();
    CpuBackend.end_step().unwrap();
    assert_eq!(CpuBackend.counters() - before, OpCounters::default());
}

#[test]
fn since_and_sub_agree_and_saturate() {
    let a = OpCounters {
        dispatches: 10,
        submissions: 2,
        syncs: 1,
        uploads: 3,
        bind_groups: 10,
        paces: 5,
    };
    let b = OpCounters {
        dispatches: 4,
        submissions: 1,
        syncs: 1,
        uploads: 0,
        bind_groups: 4,
        paces: 2,
    };
    assert_eq!(a.since(&b), a - b);
    assert_eq!(
        a - b,
        OpCounters {
            dispatches: 6,
            submissions: 1,
            syncs: 0,
            uploads: 3,
            bind_groups: 6,
            paces: 3,
        }
    );
    assert_eq!(b - a, OpCounters::default());
}

/// A dispatch that repeats an earlier one (same kernel, buffers and place in its submission)
/// reuses its bind group; other buffers, or a trim, make a new one; and the results stay right.
#[test]
fn gpu_reuses_bind_groups_of_repeated_dispatches() {
    let Some(g) = common::gpu() else { return };
    let x = g.upload(&[1.0, -2.0, 3.0]).unwrap();
    let y = g.upload(&[0.5, 0.25, -4.0]).unwrap();
    // Each round: neg into a fresh buffer, read, drop it (back to the pool for the next round).
    let round = |input: &lemur_tensor::gpu::GpuStorage| {
        let before = g.counters();
        let out = g.unary(Unary::Neg, input).unwrap();
        let values = pollster::block_on(g.read(&out)).unwrap();
        (values, g.counters().since(&before).bind_groups)
    };
    assert_eq!(round(&x), (vec![-1.0, 2.0, -3.0], 1));
    assert_eq!(
        round(&x),
        (vec![-1.0, 2.0, -3.0], 0),
        "the same dispatch again"
    );
    assert_eq!(
        round(&y),
        (vec![-0.5, -0.25, 4.0], 1),
        "another input buffer"
    );
    assert_eq!(round(&y), (vec![-0.5, -0.25, 4.0], 0));
    g.trim();
    assert_eq!(
        round(&x),
        (vec![-1.0, 2.0, -3.0], 1),
        "trim empties the cache"
    );
}
