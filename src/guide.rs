//! Guides: documentation only.

/// gradlab for PyTorch users: the same ideas under Rust names.
///
/// ## Tensors and autograd
///
/// | PyTorch | gradlab |
/// | --- | --- |
/// | `torch.tensor([[1., 2.], [3., 4.]])` | `Tensor::from_vec(vec![1., 2., 3., 4.], [2, 2])?` |
/// | `torch.zeros(2, 3)`, `torch.ones`, `torch.full`, `torch.eye`, `torch.arange` | `Tensor::zeros([2, 3])?`, `ones`, `full`, `eye`, `arange` |
/// | `torch.randn(2, 3, generator=g)` | `Tensor::randn([2, 3], &mut rng)?` (any seeded `rand::Rng`) |
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
///
/// ## Modules
///
/// | PyTorch | gradlab |
/// | --- | --- |
/// | `class Net(nn.Module)` with `forward(self, x)` | `impl Module<T> for Net` with `forward(&self, cx: &Ctx, x: Var)`; name children in `children` and own params in `own_params` |
/// | `self.w = nn.Parameter(..)`; `self.w` in forward | a `Param<T>` field; `cx.param(&self.w)` in forward |
/// | `self.fc(x)` | `cx.call("fc", &self.fc, x)?` (recorded under its path for diagnostics) |
/// | `nn.Linear(i, o)`, `nn.Conv2d`, `nn.BatchNorm1d`, `nn.LayerNorm`, `nn.Dropout`, `nn.Embedding`, `nn.Sequential` | [`nn::Linear::new(i, o, &mut rng)`](nn::Linear), `Conv2d`, `BatchNorm1d`, `LayerNorm`, `Dropout`, `Embedding`, `Sequential::new().append(..)` |
/// | `model.parameters()`, `model.named_parameters()`, `model.train()`, `model.eval()` | the same names |
/// | `torch.nn.init.kaiming_uniform_(w, a=..)` | `nn::init::kaiming_uniform(..)`, or `Init::KaimingUniform { .. }` in a layer config |
/// | `F.cross_entropy(logits, y, label_smoothing=..)` | `nn::loss::cross_entropy(logits, &y, smoothing, Reduction::Mean)?`, or `logits.cross_entropy(&y)?` |
/// | `torch.save(model.state_dict(), f)` / `load_state_dict` | `nn::state::save(&model, f)?` / `nn::state::load(&model, f)?` (safetensors; files interchange with `safetensors.torch`) |
/// | hooks to inspect activations | `nn::diagnose(&model, &x, loss)?`: per-layer mean, std, saturation, dead units, gradient norms |
///
/// ## Optimisers
///
/// | PyTorch | gradlab |
/// | --- | --- |
/// | `torch.optim.Adam(model.parameters(), lr=1e-3, amsgrad=True)` | `Optim::new(model.parameters(), 1e-3, Adam { amsgrad: true, ..Adam::default() })?` |
/// | `opt.zero_grad(); loss.backward(); opt.step()` | `opt.zero_grad(); loss.backward()?; opt.step()?;` |
/// | `param_groups[i]["lr"] = ..` | `opt.set_group_lr(i, ..)?` / `opt.set_lr(..)` |
/// | `torch.optim.lr_scheduler.CosineAnnealingLR` etc. | `optim::CosineAnnealingLr` etc. (`LrScheduler::step(&mut opt)`) |
/// | `torch.nn.utils.clip_grad_norm_` | `optim::clip_grad_norm(&params, max_norm, 2.0)?` |
/// | `opt.state_dict()` | `opt.state_dict()` / `opt.save(path)?` (safetensors) |
/// | subclassing `torch.optim.Optimizer` | implement `UpdateRule` (hyper-parameters, state, one per-tensor `update`): the driver does the rest |
pub mod for_pytorch_users {}
