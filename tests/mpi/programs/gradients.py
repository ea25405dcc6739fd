"""Distributed gradients equal the one-process gradients of the same global model.

Run as ``mpiexec -n N python gradients.py TMPDIR`` (N = 1, 2, 4; tests/mpi/test_mpi.py does).
Every rank runs every case; rank 0 prints one line per failing case and ``ok: K cases``, and
the exit status is 1 when any case fails on any rank.

The model: a 2D field u, decomposed over a 1D (rows) or 2D (rows x columns) Cartesian process
grid, periodic or not, stepped by a nonlinear diffusion-advection update whose stencil reaches
``width`` cells along each decomposed axis. The one-process reference pads the global field
exactly as `exchange_halos` fills ghosts (wrap, or the constant ``fill``) and applies the same
update, differentiated by plain autograd (the oracle). Gradients are taken of the global loss
``sum(weight * u_T**2)`` with respect to the initial field (distributed) and the coefficient nu
(replicated).
"""

from __future__ import annotations

import sys
import traceback

import autograd.numpy as np
from autograd import grad, value_and_grad
from mpi4py import MPI

from ckpt_transform import (
    ArrayStorage,
    HDF5Storage,
    OnlineR2,
    Periodic,
    Revolve,
    StoreAll,
    checkpoint_struct,
    checkpointed_for,
    mpi,
)

WORLD = MPI.COMM_WORLD
RANK = WORLD.Get_rank()
TMP = sys.argv[1]
SHAPE = (13, 10)
STEPS = 7
DT = 0.05
FILL = 0.5
RTOL = 1e-12


def take(x, axis, start, stop):
    index = [slice(None)] * x.ndim
    index[axis] = slice(start, stop)
    return x[tuple(index)]


def pad_global(u, ndec, w, periodic):
    """The global field with ghosts along its first ``ndec`` axes, as exchange_halos fills them."""
    for axis in range(ndec):
        n = u.shape[axis]
        if periodic[axis]:
            low, high = take(u, axis, n - w, n), take(u, axis, 0, w)
        else:
            shape = list(u.shape)
            shape[axis] = w
            low = high = np.full(shape, FILL)
        u = np.concatenate([low, u, high], axis=axis)
    return u


def rhs(p, ndec, w, nu):
    """The update of the interior of a field padded by ``w`` ghosts along its first ndec axes."""

    def shifted(axis, k):
        q = p
        for a in range(ndec):
            n = q.shape[a]
            off = k if a == axis else 0
            q = take(q, a, w + off, n - w + off)
        return q

    u = shifted(0, 0)
    lap = 0.0
    for axis in range(2):
        for k in range(1, w + 1):
            if axis < ndec:
                lap = lap + (shifted(axis, -k) + shifted(axis, k) - 2 * u) / k
            else:  # a local axis: periodic in the block itself
                lap = lap + (np.roll(u, k, axis) + np.roll(u, -k, axis) - 2 * u) / k
    adv = u * (shifted(0, w) - shifted(0, -w))
    return u + DT * (nu * lap - 0.3 * adv + 0.1 * np.sin(u))


def initial(shape):
    i, j = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij")
    return np.cos(0.7 * i + 0.3) * np.sin(0.5 * j + 0.2) + 0.1 * i / shape[0]


def weights(shape):
    i, j = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij")
    return 1.0 + 0.5 * np.cos(i + 2 * j)


def reference(ndec, w, periodic):
    """One process, plain autograd: value and gradients (u0, nu) of the global loss."""

    def loss(u, nu):
        for _ in range(STEPS):
            u = rhs(pad_global(u, ndec, w, periodic), ndec, w, nu)
        return np.sum(weights(SHAPE) * u**2)

    return value_and_grad(loss, (0, 1))(initial(SHAPE), 0.3)


def rhs_pair(pu, pz, ndec, w, nu):
    """Two coupled fields, both read with their ghosts (the pair `exchange_halos` fills at once)."""
    a = rhs(pu, ndec, w, nu)
    b = rhs(pz, ndec, w, 0.5 * nu)
    return a + 0.2 * a * b, b - 0.1 * a


def reference_pair(ndec, w, periodic):
    """One process, plain autograd: the value and gradients of the two-field loss (u0, z0, nu)."""

    def loss(u, z, nu):
        for _ in range(STEPS):
            pu, pz = pad_global(u, ndec, w, periodic), pad_global(z, ndec, w, periodic)
            u, z = rhs_pair(pu, pz, ndec, w, nu)
        return np.sum(weights(SHAPE) * (u**2 + z**2))

    return value_and_grad(loss, (0, 1, 2))(initial(SHAPE), initial_z(SHAPE), 0.3)


def initial_z(shape):
    return 0.5 * initial(shape) ** 2 - 0.2


def relerr(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


def cart(ndec, periodic):
    dims = MPI.Compute_dims(WORLD.Get_size(), ndec)
    return WORLD.Create_cart(dims, periods=list(periodic[:ndec]))


def schemes(storage):
    return {
        "Revolve": Revolve(3, storage=storage),
        "Periodic": Periodic(period=3, storage=storage),
        "OnlineR2": OnlineR2(3, storage=storage),
        "StoreAll": StoreAll(storage=storage),
    }


def while_schemes(storage):
    return {
        "Revolve": Revolve(3, steps=STEPS, storage=storage),
        "Periodic": Periodic(period=3, storage=storage),
        "OnlineR2": OnlineR2(3, storage=storage),
        "StoreAll": StoreAll(storage=storage),
    }


def storages():
    return {
        "memory": ArrayStorage(),
        "hdf5": HDF5Storage(f"{TMP}/ckpt-{RANK}.h5"),
    }


results = []  # (case name, error text or None)


def check(name, comm, ref, got):
    """``got`` = (value, (gradient of u0, of nu)) on this rank against ``ref`` in one process."""
    ref_value, (ref_u, ref_nu) = ref
    value, (g_u, g_nu) = got
    mine = ref_u[mpi.local_slices(comm, SHAPE)]
    err = max(relerr(value, ref_value), relerr(g_u, mine), relerr(g_nu, ref_nu))
    problem = None if err <= RTOL else f"relative error {err:.2e} > {RTOL:g}"
    results.append((name, problem))


def run_case(name, body):
    try:
        body()
    except Exception:
        results.append((name, traceback.format_exc(limit=4)))


def for_cases():
    for ndec in (1, 2):
        for periodic in ((True, True), (False, False), (True, False)):
            if ndec == 1 and periodic == (True, False):
                continue
            for w in (1, 2):
                ref = reference(ndec, w, periodic)
                comm = cart(ndec, periodic)
                sl = mpi.local_slices(comm, SHAPE)
                u0, wt = initial(SHAPE)[sl], weights(SHAPE)[sl]
                # every scheme with both storages, over the cases (taking turns keeps it short)
                sname = ("memory", "hdf5")[(w + ndec + periodic[0]) % 2]
                for kname, scheme in schemes(storages()[sname]).items():

                    def step(u, i, nu, comm=comm, w=w, ndec=ndec):
                        return rhs(mpi.exchange_halos(u, comm, w, FILL), ndec, w, nu)

                    def loss(u, nu, scheme=scheme, step=step, wt=wt):
                        u = checkpointed_for(step, u, STEPS, scheme, params=(nu,))
                        return np.sum(wt * u**2)

                    name = f"for {ndec}D periodic={periodic[:ndec]} width={w} {kname} {sname}"

                    def body(name=name, loss=loss, comm=comm, ref=ref, u0=u0):
                        vg = mpi.value_and_grad(loss, (0, 1), comm=comm, replicated=1)
                        check(name, comm, ref, vg(u0, 0.3))

                    run_case(name, body)


def pair_cases():
    """Two fields exchanged together (one message per neighbour) against one process.

    The two-field model's gradient, 1D and 2D, periodic and not, the widths (1 and 2) and the
    schemes taking turns to keep the run short (the dot-product and value tests of the tuple
    form cover every combination).
    """
    turn = 0
    for ndec in (1, 2):
        for periodic in ((True, True), (False, False), (True, False)):
            if ndec == 1 and periodic == (True, False):
                continue
            turn += 1
            w = 1 + turn % 2
            ref = reference_pair(ndec, w, periodic)
            comm = cart(ndec, periodic)
            sl = mpi.local_slices(comm, SHAPE)
            u0, z0, wt = initial(SHAPE)[sl], initial_z(SHAPE)[sl], weights(SHAPE)[sl]
            kname, scheme = list(schemes(ArrayStorage()).items())[turn % 4]

            def step(state, i, nu, comm=comm, w=w, ndec=ndec):
                pu, pz = mpi.exchange_halos(state, comm, w, FILL)
                return rhs_pair(pu, pz, ndec, w, nu)

            def loss(u, z, nu, scheme=scheme, step=step, wt=wt):
                u, z = checkpointed_for(step, (u, z), STEPS, scheme, params=(nu,))
                return np.sum(wt * (u**2 + z**2))

            name = f"pair {ndec}D periodic={periodic[:ndec]} width={w} {kname}"

            def body(name=name, loss=loss, comm=comm, ref=ref, u0=u0, z0=z0, sl=sl):
                vg = mpi.value_and_grad(loss, (0, 1, 2), comm=comm, replicated=2)
                value, g = vg(u0, z0, 0.3)
                ref_value, ref_g = ref
                err = max(
                    relerr(value, ref_value),
                    relerr(g[0], ref_g[0][sl]),
                    relerr(g[1], ref_g[1][sl]),
                    relerr(g[2], ref_g[2]),
                )
                results.append((name, None if err <= RTOL else f"relative error {err:.2e}"))

            run_case(name, body)


def while_cases():
    # The condition reads a time every rank shares; the count is the same on every rank.
    for ndec in (1, 2):
        periodic = (True, False)
        w = 1
        ref = reference(ndec, w, periodic)
        comm = cart(ndec, periodic)
        sl = mpi.local_slices(comm, SHAPE)
        u0, wt = initial(SHAPE)[sl], weights(SHAPE)[sl]
        for sname, storage in storages().items():
            for kname, scheme in while_schemes(storage).items():

                def step(state, i, nu, comm=comm, ndec=ndec):
                    u, t = state
                    return (rhs(mpi.exchange_halos(u, comm, 1, FILL), ndec, 1, nu), t + 1)

                def cond(state, nu):
                    return state[1] < STEPS

                def loss(u, nu, scheme=scheme, step=step, wt=wt, comm=comm):
                    u, _ = mpi.checkpointed_while(
                        cond, step, (u, 0), scheme, comm=comm, params=(nu,)
                    )
                    return np.sum(wt * u**2)

                name = f"while {ndec}D {kname} {sname}"

                def body(name=name, loss=loss, comm=comm, ref=ref, u0=u0):
                    vg = mpi.value_and_grad(loss, (0, 1), comm=comm, replicated=1)
                    check(name, comm, ref, vg(u0, 0.3))

                run_case(name, body)


def decorator_cases():
    """`checkpoint_struct` on a loop that calls exchange_halos: nothing special."""
    periodic = (True, True)
    ref = reference(2, 2, periodic)
    comm = cart(2, periodic)
    sl = mpi.local_slices(comm, SHAPE)
    u0, wt = initial(SHAPE)[sl], weights(SHAPE)[sl]

    @checkpoint_struct(Revolve(2, storage=HDF5Storage(f"{TMP}/deco-{RANK}.h5")))
    def loss(u, nu):
        for _ in range(STEPS):
            u = rhs(mpi.exchange_halos(u, comm, 2, FILL), 2, 2, nu)
        return np.sum(wt * u**2)

    def body():
        value, g = mpi.value_and_grad(loss, (0, 1), comm=comm, replicated=1)(u0, 0.3)
        check("decorator for 2D periodic width=2 Revolve hdf5", comm, ref, (value, g))
        plain = np.sum(weights(SHAPE) * _plain_final(periodic) ** 2)
        err = relerr(value, plain)
        results.append(("decorator global loss", None if err <= RTOL else f"loss off by {err}"))
        full = mpi.gather(g[0], comm, SHAPE)
        if RANK == 0:
            err = relerr(full, ref[1][0])
            results.append(("gather", None if err <= RTOL else f"gathered gradient off by {err}"))

    run_case("decorator", body)


def _plain_final(periodic):
    u = initial(SHAPE)
    for _ in range(STEPS):
        u = rhs(pad_global(u, 2, 2, periodic), 2, 2, 0.3)
    return u


def operator_cases():
    """Dot-product tests of the two primitives (forward mode against reverse mode), and errors."""
    from autograd import make_jvp, make_vjp

    rng = np.random.default_rng(RANK)
    for ndec in (1, 2):
        for periodic in ((True, True), (False, False), (False, True)):
            for w in (1, 2):
                comm = cart(ndec, periodic)
                shape = (4, 3, 2)  # a trailing component axis is carried along
                x, v = rng.standard_normal((2, *shape))
                g = rng.standard_normal(
                    tuple(n + 2 * w if a < ndec else n for a, n in enumerate(shape))
                )

                def f(x, comm=comm, w=w):
                    return mpi.exchange_halos(x, comm, w, fill=0.7)

                vjp, _ = make_vjp(f)(x)
                _, jv = make_jvp(f)(x)(v)
                left = mpi.allreduce(np.sum(jv * g), comm)
                right = mpi.allreduce(np.sum(v * vjp(g)), comm)
                scale = mpi.allreduce(np.sum(np.abs(jv * g)), comm)  # the terms' size
                err = abs(left - right) / scale
                name = f"dot-product exchange_halos {ndec}D periodic={periodic[:ndec]} width={w}"
                results.append((name, None if err <= RTOL else f"<Jv,g>={left} <v,J'g>={right}"))

                # the values, corners included: the global field padded, cut around this block
                sl = mpi.local_slices(comm, SHAPE)
                ext = tuple(
                    slice(s.start, s.stop + 2 * w) if a < ndec else s for a, s in enumerate(sl)
                )
                want = pad_global(initial(SHAPE), ndec, w, periodic)[ext]
                got = mpi.exchange_halos(initial(SHAPE)[sl], comm, w, FILL)
                name = f"values exchange_halos {ndec}D periodic={periodic[:ndec]} width={w}"
                results.append((name, None if np.array_equal(got, want) else "ghosts differ"))

    for ndec, w in ((1, 1), (2, 2)):
        comm = cart(ndec, (True, False))
        p, g = rng.standard_normal((2, 7, 6, 2))
        g = g[tuple(slice(w, -w) if a < ndec else slice(None) for a in range(3))]
        vjp, inner = make_vjp(lambda p, comm=comm, w=w: mpi.interior(p, comm, w))(p)
        _, jv = make_jvp(lambda p, comm=comm, w=w: mpi.interior(p, comm, w))(p)(p)
        inner_ok = np.array_equal(inner, p[tuple(slice(w, -w) for _ in range(ndec))])
        err = abs(np.sum(jv * g) - np.sum(p * vjp(g))) / np.sum(np.abs(jv * g))
        name = f"interior {ndec}D width={w}: values and dot-product"
        results.append((name, None if inner_ok and err <= RTOL else f"{inner_ok} {err}"))

    comm = cart(1, (True,))
    for x in (1.5 + RANK, np.arange(3.0) + RANK):
        v, g = 0.3 + 0 * np.asarray(x), -1.1 + np.cos(np.asarray(x))
        vjp, _ = make_vjp(lambda x: mpi.allreduce(x, comm))(x)
        _, jv = make_jvp(lambda x: mpi.allreduce(x, comm))(x)(v)
        left = mpi.allreduce(np.sum(jv * g), comm)
        right = mpi.allreduce(np.sum(v * vjp(g)), comm)
        err = abs(left - right) / mpi.allreduce(np.sum(np.abs(jv * g)), comm)
        results.append((f"dot-product allreduce {np.ndim(x)}D", None if err <= RTOL else err))
    total = mpi.allreduce(np.arange(3.0) + RANK, comm)
    want = np.arange(3.0) * WORLD.Get_size() + sum(range(WORLD.Get_size()))
    results.append(("allreduce value", None if np.array_equal(total, want) else str(total)))

    def expect(name, kind, words, call):
        try:
            call()
        except kind as error:
            text = str(error)
            missing = [w for w in words if w not in text]
            results.append((name, f"message lacks {missing}: {text}" if missing else None))
        else:
            results.append((name, f"no {kind.__name__} raised"))

    expect(
        "error: not a Cartesian communicator",
        TypeError,
        ["Create_cart", "Intracomm"],
        lambda: mpi.exchange_halos(np.ones(3), WORLD),
    )
    expect(
        "error: width 0",
        ValueError,
        ["width", "0"],
        lambda: mpi.exchange_halos(np.ones(3), comm, 0),
    )
    expect(
        "error: block narrower than the halo",
        ValueError,
        ["2 cells", "width 3"],
        lambda: mpi.exchange_halos(np.ones(2), comm, 3),
    )
    expect(
        "error: fewer axes than dims",
        ValueError,
        ["1 axes", "decomposes 2"],
        lambda: mpi.exchange_halos(np.ones(4), cart(2, (True, True))),
    )
    expect(
        "error: fields of different shapes",
        ValueError,
        ["one shape", "(3,)", "(4,)"],
        lambda: mpi.exchange_halos((np.ones(3), np.ones(4)), comm),
    )
    expect(
        "error: a field that is not an array",
        TypeError,
        ["member 1", "float", "not an array"],
        lambda: mpi.exchange_halos((np.ones(3), 2.0), comm),
    )
    expect(
        "error: interior of a block too small",
        ValueError,
        ["shape (2,)", "no interior"],
        lambda: mpi.interior(np.ones(2), comm),
    )
    expect(
        "error: not a communicator",
        TypeError,
        ["MPI communicator", "'world'"],
        lambda: mpi.grad(lambda a: a, 0, "world"),
    )
    expect(
        "error: replicated not differentiated",
        ValueError,
        ["replicated", "[2]"],
        lambda: mpi.grad(lambda a, b, c: a, (0, 1), comm=comm, replicated=2),
    )


def pair_operator_cases():
    """The tuple form of exchange_halos: the values of separate calls, and a dot-product test."""
    from autograd import make_jvp, make_vjp

    rng = np.random.default_rng(100 + RANK)
    for ndec in (1, 2):
        for periodic in ((True, True), (False, False), (False, True)):
            for w in (1, 2):
                comm = cart(ndec, periodic)
                shape = (4, 3, 2)
                x, y, vx, vy = rng.standard_normal((4, *shape))
                ext = tuple(n + 2 * w if a < ndec else n for a, n in enumerate(shape))
                gx, gy = rng.standard_normal((2, *ext))

                def f(x, y, comm=comm, w=w):  # stacked: autograd's make_jvp wants one array
                    return np.stack(mpi.exchange_halos((x, y), comm, w, fill=0.7))

                got = mpi.exchange_halos([x, y], comm, w, fill=0.7)
                alone = [mpi.exchange_halos(a, comm, w, fill=0.7) for a in (x, y)]
                same = isinstance(got, list) and all(map(np.array_equal, got, alone))
                vjp, _ = make_vjp(f, (0, 1))(x, y)
                _, jv = make_jvp(f, (0, 1))(x, y)((vx, vy))
                bx, by = vjp(np.stack((gx, gy)))
                left = mpi.allreduce(np.sum(jv[0] * gx) + np.sum(jv[1] * gy), comm)
                right = mpi.allreduce(np.sum(vx * bx) + np.sum(vy * by), comm)
                scale = mpi.allreduce(np.sum(np.abs(jv[0] * gx)) + np.sum(np.abs(jv[1] * gy)), comm)
                err = abs(left - right) / scale
                name = f"pair exchange_halos {ndec}D periodic={periodic[:ndec]} width={w}"
                problem = None if same else "values differ from separate calls"
                if not err <= RTOL:  # NaN fails too
                    problem = f"<Jv,g>={left} <v,J'g>={right}"
                results.append((name, problem))


def second_order_cases():
    """Value, gradient and Hessian-vector products (forward over reverse and reverse over
    reverse) of the two-field model across ranks, against plain autograd in one process.

    Each rank differentiates its own share of the loss; the adjoints of the exchange send the
    ghosts' (second-order) cotangents back to their owners, so each rank gets its block of the
    global derivatives. Both the plain loop and the checkpointed one.
    """
    from autograd import make_jvp
    from autograd.differential_operators import hessian_tensor_product

    for ndec, periodic, w in ((1, (True, True), 1), (2, (False, False), 2), (2, (True, False), 1)):
        comm = cart(ndec, periodic)
        sl = mpi.local_slices(comm, SHAPE)
        U0, Z0, WT = initial(SHAPE), initial_z(SHAPE), weights(SHAPE)
        V = 0.3 * np.sin(WT) - 0.1

        def ref_loss(u, ndec=ndec, w=w, periodic=periodic, Z0=Z0, WT=WT):
            z = Z0
            for _ in range(STEPS):
                pu, pz = pad_global(u, ndec, w, periodic), pad_global(z, ndec, w, periodic)
                u, z = rhs_pair(pu, pz, ndec, w, 0.3)
            return np.sum(WT * (u**2 + z**2))

        def step(state, i, comm=comm, w=w, ndec=ndec):
            pu, pz = mpi.exchange_halos(state, comm, w, FILL)
            return rhs_pair(pu, pz, ndec, w, 0.3)

        def plain(u, z0=Z0[sl], wt=WT[sl], step=step):
            z = z0
            for i in range(STEPS):
                u, z = step((u, z), i)
            return np.sum(wt * (u**2 + z**2))

        def checkpointed(u, z0=Z0[sl], wt=WT[sl], step=step):
            u, z = checkpointed_for(step, (u, z0), STEPS, Revolve(3))
            return np.sum(wt * (u**2 + z**2))

        ref = (
            ref_loss(U0),
            grad(ref_loss)(U0),
            make_jvp(grad(ref_loss))(U0)(V)[1],
            hessian_tensor_product(ref_loss)(U0, V),
        )
        u0, v = U0[sl], V[sl]
        for kind, f in (("plain loop", plain), ("checkpointed_for", checkpointed)):
            name = f"second order {kind} {ndec}D periodic={periodic[:ndec]} width={w}"

            def body(name=name, f=f, comm=comm, ref=ref, u0=u0, v=v, sl=sl):
                got = (
                    mpi.allreduce(f(u0), comm),
                    grad(f)(u0),
                    make_jvp(grad(f))(u0)(v)[1],
                    hessian_tensor_product(f)(u0, v),
                )
                err = max(
                    relerr(got[0], ref[0]),
                    *(relerr(a, b[sl]) for a, b in zip(got[1:], ref[1:])),
                )
                results.append((name, None if err <= RTOL else f"relative error {err:.2e}"))

            run_case(name, body)


operator_cases()
pair_operator_cases()
for_cases()
pair_cases()
while_cases()
decorator_cases()
second_order_cases()

every = WORLD.gather(results, root=0)
if RANK == 0:
    failed = 0
    count = 0
    for r, res in enumerate(every):
        for name, problem in res:
            count += 1
            if problem is not None:
                failed += 1
                print(f"FAIL rank {r}: {name}: {problem}")
    print(f"ok: {count - failed} of {count} case-ranks on {WORLD.Get_size()} ranks")
    code = 1 if failed else 0
else:
    code = 0
code = WORLD.allreduce(code, op=MPI.MAX)
sys.exit(code)
