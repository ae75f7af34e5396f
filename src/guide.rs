//! Guides: documentation only.

/// gradlab for PyTorch users: the same ideas under Rust names.
///
/// ## Tensors and autograd
///
/// | PyTorch | gradlab |
/// | --- | --- |
/// | `torch.tensor([[1., 2.], [3., 4.]])` | `Tensor::from_vec(vec![1., 2., 3., 4.], [2, 2])?` |
/// | `torch.zeros(2, 3)`, `torch.ones`, `torch.full`, `torch.eye`, `torch.arange` | `Tensor::zeros([2, 3])`, `ones`, `full`, `eye`, `arange` |
/// | `torch.randn(2, 3, generator=g)` | `Tensor::randn([2, 3], &mut rng)` (any seeded `rand::Rng`) |
/// | autograd recording is implicit, global | an explicit [`Tape`](autograd::Tape) per step; values on it are [`Var`](autograd::Var)s |
/// | `x.requires_grad_()` | `tape.var(x)` (an input to differentiate) |
/// | `nn.Parameter(w)` | [`Param::new(w)`](autograd::Param), bound per tape with `tape.param(&p)` |
/// | `loss.backward()` | `loss.backward()?` — gradients add into each `Param`'s `grad()` |
/// | `p.grad = None` / `optimizer.zero_grad()` | `p.zero_grad()` / `opt.zero_grad()` |
/// | `torch.autograd.grad(y, x, create_graph=True)` | `tape.grad(y, &[x])?` — always differentiable again |
/// | `torch.autograd.grad(y, x, grad_outputs=v)` | `tape.vjp(y, v, &[x])?` |
/// | `with torch.no_grad():` | `tape.no_grad(\|\| ...)` |
/// | `x.detach()` | `x.detach()` |
/// | `torch.autograd.set_detect_anomaly(True)` | `tape.set_anomaly_mode(true)`: the first NaN/inf names its op and source line |
/// | `torch.autograd.Function` | implement [`Op`](autograd::Op) (`forward` on tensors, `backward` in `Var` ops) and call `tape.apply(op, &[inputs])?` |
/// | `torch.autograd.gradcheck` / `gradgradcheck` | [`gradcheck`](autograd::gradcheck()) / [`gradgradcheck`](autograd::gradgradcheck()) — same defaults, and the report blames the failing op |
///
/// ## Ops
///
/// Names follow PyTorch: `matmul`, `softmax`, `log_softmax`, `cross_entropy`, `layer_norm`,
/// `conv2d`, `max_pool2d`, `narrow`, `index_select`, `gather`, `logsumexp`, `var`, ... A few
/// differences:
///
/// | PyTorch | gradlab | why |
/// | --- | --- | --- |
/// | `x.sum(dim=1, keepdim=True)` | `x.sum_axes(&[1], true)?` | `sum()` with no arguments is the total |
/// | `torch.log(x)` | `x.ln()` | Rust's name for the natural logarithm |
/// | `x[:, 1:5:2]` | `x.slice(1, 1, Some(5), 2)?` | no indexing syntax for ranges with steps |
/// | `torch.where(c, a, b)` | `a.where_cond(&c, b)?` | the condition is a constant tensor |
/// | `a + b` raising on bad shapes | `a.add(b)?` returns an error; `a + b` panics with the same message | fallible ops stay readable |
///
/// Errors are values: every shape, axis or misuse error names the op, the shapes and the
/// line of *your* code that recorded the op.
pub mod for_pytorch_users {}
