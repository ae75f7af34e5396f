//! safetensors state: round trips in f32 and f64, a file written by PyTorch, and every
//! failure case named rather than panicking.

use std::path::{Path, PathBuf};

use autograd::io::{self, StoredDType};
use autograd::{Float, Tape, Tensor};
use nn::{
    state, BatchNorm1d, BatchNorm2d, Conv2dConfig, Ctx, Error, Flatten, LayerNorm, Linear,
    MaxPool2d, Module, PRelu, Relu, Sequential,
};
use rand::rngs::StdRng;
use rand::SeedableRng;

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

/// A scratch directory unique to this test, removed at the end.
struct Scratch(PathBuf);
impl Scratch {
    fn new(tag: &str) -> Self {
        let d = std::env::temp_dir().join(format!("nn-state-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        Scratch(d)
    }
    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}
impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The architecture of `tests/data/make_torch_state.py`, layer for layer.
fn torch_cnn<T: Float>(seed: u64) -> Sequential<T> {
    let mut rng = StdRng::seed_from_u64(seed);
    Sequential::new()
        .append(
            Conv2dConfig {
                padding: (1, 1),
                ..Conv2dConfig::new(1, 2, 3)
            }
            .init(&mut rng)
            .unwrap(),
        )
        .append(BatchNorm2d::new(2).unwrap())
        .append(Relu)
        .append(MaxPool2d::new(2))
        .append(Flatten::default())
        .append(Linear::new(8, 5, &mut rng).unwrap())
        .append(LayerNorm::new(&[5]).unwrap())
        .append(PRelu::new(1, 0.25).unwrap())
        .append(Linear::new(5, 3, &mut rng).unwrap())
}

fn mlp<T: Float>(seed: u64) -> Sequential<T> {
    let mut rng = StdRng::seed_from_u64(seed);
    Sequential::new()
        .append(Linear::new(3, 4, &mut rng).unwrap())
        .append(BatchNorm1d::new(4).unwrap())
        .append(Relu)
        .append(Linear::new(4, 2, &mut rng).unwrap())
}

fn assert_same_state<T: Float>(a: &dyn Module<T>, b: &dyn Module<T>) {
    let (pa, pb) = (a.named_parameters(), b.named_parameters());
    assert_eq!(pa.len(), pb.len());
    for ((na, x), (nb, y)) in pa.iter().zip(&pb) {
        assert_eq!(na, nb);
        assert_eq!(x.value(), y.value(), "{na}");
    }
    for ((na, x), (_, y)) in a.named_buffers().iter().zip(&b.named_buffers()) {
        assert_eq!(x.value(), y.value(), "{na}");
    }
}

fn round_trip<T: Float>(tag: &str) {
    let dir = Scratch::new(tag);
    let a = mlp::<T>(1);
    // move the running statistics off their initial values
    let tape = Tape::new();
    Ctx::new(&tape)
        .call(
            &a,
            tape.constant(Tensor::randn([6, 3], &mut StdRng::seed_from_u64(5)).unwrap()),
        )
        .unwrap();
    let path = dir.path("mlp.safetensors");
    state::save(&a, &path).unwrap();
    // no temporary file is left next to the target
    let names: Vec<_> = std::fs::read_dir(&dir.0)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, [std::ffi::OsString::from("mlp.safetensors")]);
    let b = mlp::<T>(2);
    state::load(&b, &path).unwrap();
    assert_same_state(&a, &b);
    // overwriting an existing file works (rename over it)
    state::save(&b, &path).unwrap();
}

#[test]
fn state_round_trips_in_f32_and_f64() {
    round_trip::<f32>("f32");
    round_trip::<f64>("f64");
}

#[test]
fn a_pytorch_state_dict_loads_and_computes_what_pytorch_computed() {
    let model = torch_cnn::<f32>(123);
    state::load(&model, data("torch_cnn.safetensors")).unwrap();
    let bufs = model.named_buffers();
    assert_eq!(bufs[2].0, "1.num_batches_tracked");
    assert_eq!(bufs[2].1.value().to_vec(), [3.0]);

    // x and y were computed by torch in eval mode (see make_torch_state.py)
    let bytes = std::fs::read(data("torch_cnn_io.safetensors")).unwrap();
    let io = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let read = |name: &str| {
        let v = io.tensor(name).unwrap();
        let vals: Vec<f32> = v
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        Tensor::from_vec(vals, v.shape().to_vec()).unwrap()
    };
    let (x, want) = (read("x"), read("y"));
    model.eval();
    let tape = Tape::new();
    let y = Ctx::new(&tape)
        .call(&model, tape.constant(x))
        .unwrap()
        .value();
    assert_eq!(y.dims(), want.dims());
    for (a, b) in y.as_slice().iter().zip(want.as_slice()) {
        assert!((a - b).abs() < 1e-5, "{y:?} vs torch {want:?}");
    }
}

/// The codec's error inside a state error (nn carries it rather than translating it).
fn state_error(e: &Error) -> &io::Error {
    match e {
        Error::State(s) => s,
        other => panic!("expected a state file error, got {other}"),
    }
}

#[test]
fn an_f32_file_into_an_f64_model_is_a_dtype_error_naming_the_tensor() {
    let model = torch_cnn::<f64>(0);
    let e = state::load(&model, data("torch_cnn.safetensors")).unwrap_err();
    assert!(
        matches!(state_error(&e), io::Error::DType { name, expected: StoredDType::F64, got: StoredDType::F32 } if name == "0.bias"),
        "{e}"
    );
}

#[test]
fn truncated_and_corrupt_files_are_errors_naming_the_file() {
    let dir = Scratch::new("corrupt");
    let model = mlp::<f32>(0);
    let good = state::to_bytes(&model).unwrap();
    // every truncation point: inside the length prefix, the header, and the data
    for cut in [0, 4, 8, 20, good.len() / 2, good.len() - 1] {
        let p = dir.path("cut.safetensors");
        std::fs::write(&p, &good[..cut]).unwrap();
        let e = state::load(&model, &p).unwrap_err();
        assert!(
            matches!(state_error(&e), io::Error::Corrupt { path, .. } if path == &p),
            "cut {cut}: {e}"
        );
    }
    // a header length pointing past the end, and garbage JSON
    let mut bad = good.clone();
    bad[..8].copy_from_slice(&(u64::MAX / 2).to_le_bytes());
    let e = state::from_bytes(&model, &bad).unwrap_err();
    assert!(matches!(state_error(&e), io::Error::Corrupt { .. }), "{e}");
    let mut bad = good.clone();
    bad[8..20].copy_from_slice(b"not json!!!!");
    let e = state::from_bytes(&model, &bad).unwrap_err();
    assert!(matches!(state_error(&e), io::Error::Corrupt { .. }), "{e}");
    // a missing file is an I/O error naming it
    let missing = dir.path("nope.safetensors");
    let e = state::load(&model, &missing).unwrap_err();
    assert!(matches!(state_error(&e), io::Error::Io { path, .. } if path == &missing));
    // and a failed load changed nothing
    assert_same_state(&model, &mlp::<f32>(0));
}

#[test]
fn missing_unexpected_and_misshapen_tensors_are_named() {
    let full = mlp::<f32>(0);
    let bytes = state::to_bytes(&full).unwrap();

    // the module has a tensor the file lacks: save a smaller model, load into the full one
    let mut rng = StdRng::seed_from_u64(1);
    let head = Sequential::<f32>::new().append(Linear::new(3, 4, &mut rng).unwrap());
    let e = state::from_bytes(&full, &state::to_bytes(&head).unwrap()).unwrap_err();
    assert!(
        matches!(state_error(&e), io::Error::Missing { name } if name == "1.bias"),
        "{e}"
    );
    assert!(
        e.to_string().contains("tensor \"1.bias\" is missing"),
        "{e}"
    );

    // the file has a tensor the module lacks
    let e = state::from_bytes(&head, &bytes).unwrap_err();
    assert!(
        matches!(state_error(&e), io::Error::Unexpected { name } if name == "1.bias"),
        "{e}"
    );

    // same names, different shape
    let wide = Sequential::<f32>::new()
        .append(Linear::new(3, 5, &mut rng).unwrap())
        .append(BatchNorm1d::new(5).unwrap())
        .append(Relu)
        .append(Linear::new(5, 2, &mut rng).unwrap());
    let e = state::from_bytes(&wide, &bytes).unwrap_err();
    assert!(
        matches!(state_error(&e), io::Error::Shape { name, got, .. } if name == "0.bias" && got == &[4]),
        "{e}"
    );
    assert!(e.to_string().contains("expected [5]"), "{e}");
}
