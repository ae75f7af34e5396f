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
/// | `torch.func.jacrev(f)(x)`, `torch.func.hessian(f, argnums=(0, 1))` | [`transforms::jacobian(f, &[x])`](autograd::transforms::jacobian), [`transforms::hessian(f, &[x, y])`](autograd::transforms::hessian) (blocks `h[a][b]`); on a tape `tape.jacobian(y, &[x])`, `tape.hessian(y, &[x, y])` |
/// | `torch.func.jvp(f, (x,), (t,))`, Hessian-vector products | [`transforms::jvp`](autograd::transforms::jvp), [`transforms::hvp`](autograd::transforms::hvp); `tape.jvp`, `tape.hvp` (differentiable again) |
/// | `torch.func.vmap(torch.func.grad(loss), in_dims=(None, 0))` | [`transforms::per_sample_grads`](autograd::transforms::per_sample_grads) (parameters arrive with a leading per-example axis) |
/// | `torch.utils.data.DataLoader(ds, batch_size, shuffle=True, generator=g)` | [`data::DataLoader::new(ds, LoaderOptions { seed, ..LoaderOptions::new(batch_size) }, collate)`](crate::data::DataLoader); each epoch reshuffles without `set_epoch`; `state()`/`resume()` |
/// | `np.save` / `np.load` | [`autograd::io::npy::save`] / [`autograd::io::npy::load`] |
/// | `with torch.no_grad():` | `tape.no_grad(\|\| ...)` |
/// | `x.detach()` | `x.detach()` |
/// | `torch.autograd.set_detect_anomaly(True)` | `tape.set_anomaly_mode(true)`: the first NaN/inf names its op and source line |
/// | `torch.autograd.Function` | implement [`Op`](autograd::Op) (`forward` on tensors, `backward` in `Var` ops) and call `tape.apply(op, &[inputs])?` |
/// | `torch.autograd.gradcheck` / `gradgradcheck` | [`gradcheck`](autograd::gradcheck()) / [`gradgradcheck`](autograd::gradgradcheck()) — same defaults, and the report blames the failing op |
///
/// ## Ops
///
/// Names follow PyTorch: `matmul`, `softmax`, `log_softmax`, `einsum`, `layer_norm`,
/// `conv1d`, `conv2d`, `conv_transpose2d`, `max_pool2d`, `adaptive_avg_pool2d`,
/// `group_norm`, `narrow`, `index_select`, `gather`, `logsumexp`, `var`, ... A few
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
/// | `class Net(nn.Module)` with `__init__` registering submodules | `#[derive(Module)] struct Net<T: Float> { fc: Linear<T>, .. }`: children, parameters and buffers are named after the fields |
/// | `def forward(self, x)` | `impl Forward<T> for Net` with `type Input<'t> = Var<'t, T>` (or a tuple, or a `#[derive(Vars)]` struct for several inputs), `type Output<'t>`, and `fn forward(&self, cx: &Ctx<'t, T>, x: Self::Input<'t>)` |
/// | `self.w = nn.Parameter(..)`; `self.w` in forward | a `Param<T>` field; `cx.param(&self.w)` in forward |
/// | `self.register_buffer("running_mean", ..)` | a `Buffer<T>` field |
/// | `self.fc(x)`, `model(x)` | `cx.call(&self.fc, x)?`, `Ctx::new(&tape).call(&model, x)?` (the name comes from the field; hooks and errors use it) |
/// | `nn.ModuleList([..])`, `self.blocks[i](x)` | `ModuleList<Block<T>>` field; `cx.call(&self.blocks[i], x)?` |
/// | `self.training` | a `Mode` field; `self.mode.is_training()` |
/// | `module.register_forward_hook(fn)` | `cx.add_forward_hook(\|call\| ..)`: the call's path, module, inputs and outputs |
/// | `nn.Linear(i, o)`, `nn.Conv2d`, `nn.BatchNorm1d`, `nn.LayerNorm`, `nn.Dropout`, `nn.Embedding`, `nn.Sequential` | [`nn::Linear::new(i, o, &mut rng)`](nn::Linear), `Conv2d`, `BatchNorm1d`, `LayerNorm`, `Dropout`, `Embedding`, `Sequential::new().append(..)` (every layer, its `state_dict` keys and differences: `docs/ops.md`) |
/// | `nn.Conv2d(3, 16, 3, stride=2, padding=1)` | `Conv2dConfig { stride: (2, 2), padding: (1, 1), ..Conv2dConfig::new(3, 16, 3) }.init(&mut rng)?` (the same for `Conv1d`, `ConvTranspose1d/2d`) |
/// | `nn.MaxPool2d(2, return_indices=True)` | `MaxPool2d::new(2).forward_with_indices(&cx, x)?` → `(Var, Vec<usize>)` |
/// | `model.parameters()`, `model.named_parameters()`, `model.train()`, `model.eval()` | the same names |
/// | `torch.nn.init.kaiming_uniform_(w, a=.., nonlinearity="leaky_relu")` | `nn::init::kaiming_uniform(shape, FanMode::FanIn, &LeakyRelu { negative_slope: a }, &mut rng)?`, or `Init::KaimingUniform { .. }` in a layer config |
/// | `F.cross_entropy(logits, y)`, `nn.CrossEntropyLoss(label_smoothing=0.1)` | `nn::loss::cross_entropy(logits, &y)?`, `CrossEntropyLoss { label_smoothing: 0.1, ..Default::default() }.forward(logits, &y)?` (every loss and op: `docs/ops.md`) |
/// | `torch.save(model.state_dict(), f)` / `load_state_dict` | `nn::state::save(&model, f)?` / `nn::state::load(&model, f)?` (safetensors; files interchange with `safetensors.torch`) |
/// | hooks to inspect activations | `nn::diagnose(&model, &x, loss)?`: per-layer mean, std, saturation, dead units, gradient norms (built on forward hooks) |
/// | `torch.nn.init.calculate_gain("tanh")` | `nn::init::calculate_gain(&Tanh)?` (the activation module carries its gain) |
///
/// ## Optimisers
///
/// | PyTorch | gradlab |
/// | --- | --- |
/// | `torch.optim.Adam(model.parameters(), lr=1e-3, amsgrad=True)` | `Optim::new(model.parameters(), 1e-3, Adam { amsgrad: true, ..Adam::default() })?` |
/// | `opt.zero_grad(); loss.backward(); opt.step()` | `opt.zero_grad(); loss.backward()?; opt.step()?;` |
/// | `param_groups[i]["lr"] = ..` | `opt.set_group_lr(i, ..)?` / `opt.set_lr(..)?` (validated: no NaN or negative rate) |
/// | `param_groups[i]["momentum"]` / `["betas"][0]` | `opt.group_momentums()` / `opt.set_group_momentum(i, ..)?` |
/// | `torch.optim.lr_scheduler.CosineAnnealingLR` etc. | `optim::CosineAnnealingLr` etc. (`LrScheduler::step(&mut opt)`); every PyTorch schedule |
/// | `scheduler.step(val_loss)` | `plateau.step_with(&mut opt, val_loss)?` |
/// | `opt.step(closure)` (LBFGS) | `opt.step_with(&mut || { ...; loss.backward()?; Ok(value) })?` on a `ClosureOptim` (gradients are cleared for you) |
/// | `torch.nn.utils.clip_grad_norm_` | `optim::clip_grad_norm(&params, max_norm, 2.0)?` |
/// | `opt.state_dict()` | `opt.state_dict()` / `opt.save(path)?` (safetensors) |
/// | saving optimiser and scheduler together | `opt.save_with_scheduler(path, &sched)?` / `opt.load_with_scheduler(path, &mut sched)?` |
/// | subclassing `torch.optim.Optimizer` | implement `UpdateRule` (hyper-parameters, state, one per-tensor `update`): the driver does the rest; `ClosureRule` for a rule that re-evaluates the loss; check it with `optim::testing::Kit` |
pub mod for_pytorch_users {}
