//! Tests of the `.npy` codec.

use super::*;

// The fixtures in tests/data/npy were written by NumPy 2.4.6:
//
//   np.save("f32_2x3.npy", (np.arange(6, dtype=np.float32) / 4).reshape(2, 3))
//   np.save("f64_fortran_2x3x4.npy",
//           np.asfortranarray(np.arange(24.0).reshape(2, 3, 4) * 0.5 - 3))
//   np.save("i64_labels.npy", np.array([3, -1, 0, 2**40], dtype=np.int64))
//   np.save("f64_scalar.npy", np.array(2.5))
//   np.save("f64_big_endian.npy", np.arange(5, dtype=">f8") * 1.5)
//   with open("f32_v2.npy", "wb") as f:
//       np.lib.format.write_array(f, np.arange(7, dtype=np.float32) - 3, version=(2, 0))
//   np.save("f64_empty_0x3.npy", np.zeros((0, 3)))
//   np.save("f16_unsupported.npy", np.arange(3, dtype=np.float16))
fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/npy")
        .join(name)
}

fn bytes_of(npy: &Npy) -> Vec<u8> {
    let mut v = Vec::new();
    npy.write(&mut v).unwrap();
    v
}

fn header_with(dict: &str) -> Vec<u8> {
    let mut v = MAGIC.to_vec();
    v.extend_from_slice(&[1, 0]);
    v.extend_from_slice(&(dict.len() as u16).to_le_bytes());
    v.extend_from_slice(dict.as_bytes());
    v
}

#[test]
fn numpy_fixtures_read_with_their_values() {
    let a = Npy::load(fixture("f32_2x3.npy")).unwrap();
    assert_eq!(a.shape(), &[2, 3]);
    assert_eq!(
        a.data(),
        &NpyData::F32(vec![0.0, 0.25, 0.5, 0.75, 1.0, 1.25])
    );

    // stored column-major; read back in row-major order: value k·0.5 - 3 at flat index k
    let f = Npy::load(fixture("f64_fortran_2x3x4.npy")).unwrap();
    assert_eq!(f.shape(), &[2, 3, 4]);
    let expected: Vec<f64> = (0..24).map(|k| k as f64 * 0.5 - 3.0).collect();
    assert_eq!(f.data(), &NpyData::F64(expected));

    let l = Npy::load(fixture("i64_labels.npy")).unwrap();
    assert_eq!(l.to_i64().unwrap(), &[3, -1, 0, 1 << 40]);

    let s: Tensor<f64> = load(fixture("f64_scalar.npy")).unwrap();
    assert_eq!((s.rank(), s.item().unwrap()), (0, 2.5));

    let b: Tensor<f64> = load(fixture("f64_big_endian.npy")).unwrap();
    assert_eq!(b.to_vec(), vec![0.0, 1.5, 3.0, 4.5, 6.0]);

    let v2: Tensor<f32> = load(fixture("f32_v2.npy")).unwrap();
    assert_eq!(v2.to_vec(), vec![-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0]);

    let e: Tensor<f64> = load(fixture("f64_empty_0x3.npy")).unwrap();
    assert_eq!(e.dims(), &[0, 3]);
}

#[test]
fn written_files_are_byte_identical_to_numpys() {
    for name in [
        "f32_2x3.npy",
        "i64_labels.npy",
        "f64_scalar.npy",
        "f64_empty_0x3.npy",
    ] {
        let numpy = std::fs::read(fixture(name)).unwrap();
        let ours = bytes_of(&Npy::read(&numpy[..]).unwrap());
        assert_eq!(ours, numpy, "{name}");
    }
}

#[test]
fn tensors_round_trip_in_both_float_types() {
    let t = Tensor::from_vec(vec![1.5f64, -2.25, 1e-300, f64::MAX, 0.1, -0.0], [3, 2, 1]).unwrap();
    let back: Tensor<f64> = Npy::read(&bytes_of(&Npy::from_tensor(&t))[..])
        .unwrap()
        .to_tensor()
        .unwrap();
    assert_eq!(back.dims(), t.dims());
    let bits = |t: &Tensor<f64>| t.as_slice().iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&back), bits(&t));
    let t32 = Tensor::from_vec(vec![0.1f32, 3.0e38, -7.0], [3]).unwrap();
    let npy = Npy::from_tensor(&t32);
    assert_eq!(npy.data().dtype_name(), "float32");
    assert_eq!(
        Npy::read(&bytes_of(&npy)[..])
            .unwrap()
            .to_tensor::<f32>()
            .unwrap(),
        t32
    );
    // float32 widens exactly
    let wide: Tensor<f64> = npy.to_tensor().unwrap();
    assert_eq!(wide.to_vec(), vec![0.1f32 as f64, 3.0e38f32 as f64, -7.0]);
}

#[test]
fn file_round_trip_and_int64() {
    let dir = std::env::temp_dir().join(format!("gradlab-npy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("labels.npy");
    let a = Npy::new(vec![2, 2], NpyData::I64(vec![i64::MIN, -1, 0, i64::MAX])).unwrap();
    a.save(&p).unwrap();
    assert_eq!(Npy::load(&p).unwrap(), a);
    let e = a.to_tensor::<f64>().unwrap_err();
    assert!(
        matches!(e, NpyError::DtypeMismatch { found: "int64", .. }),
        "{e}"
    );
    let e = Npy::new(vec![3], NpyData::F64(vec![1.0])).unwrap_err();
    assert!(matches!(e, NpyError::ShapeMismatch { len: 1, .. }), "{e}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn saves_replace_the_file_atomically_and_name_it_on_failure() {
    let dir = std::env::temp_dir().join(format!("gradlab-npy-atomic-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("x.npy");
    let small = Npy::new(vec![1], NpyData::F64(vec![1.0])).unwrap();
    let big = Npy::new(vec![3], NpyData::F64(vec![1.0, 2.0, 3.0])).unwrap();
    big.save(&p).unwrap();
    small.save(&p).unwrap();
    // the whole new file, nothing of the old one, and no temporary file left beside it
    assert_eq!(Npy::load(&p).unwrap(), small);
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, ["x.npy"]);
    let missing = dir.join("no-such-dir").join("y.npy");
    let e = small.save(&missing).unwrap_err();
    assert!(
        matches!(&e, NpyError::Io { path, .. } if path == &missing),
        "{e}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_long_header_switches_to_version_2() {
    let shape = vec![1usize; 30_000];
    let a = Npy::new(shape.clone(), NpyData::F32(vec![4.0])).unwrap();
    let b = bytes_of(&a);
    assert_eq!(&b[6..8], &[2, 0]);
    assert_eq!(b.len() % ALIGN, 4);
    // NumPy's default limit is 10000 header bytes; we refuse them too
    let e = Npy::read(&b[..]).unwrap_err();
    assert!(matches!(e, NpyError::BadHeader { .. }), "{e}");
}

#[test]
fn malformed_files_are_typed_errors() {
    let e = Npy::read(&b"\x93NUMPZ\x01\x00"[..]).unwrap_err();
    assert!(matches!(e, NpyError::BadMagic { .. }), "{e}");
    let e = Npy::read(&b"\x93NUMPY\x04\x00"[..]).unwrap_err();
    assert!(
        matches!(e, NpyError::UnsupportedVersion { major: 4, minor: 0 }),
        "{e}"
    );
    let e = Npy::read(&b"\x93NU"[..]).unwrap_err();
    assert!(matches!(e, NpyError::Io { .. }), "{e}");
    let e = Npy::load(fixture("f16_unsupported.npy")).unwrap_err();
    assert!(
        matches!(&e, NpyError::UnsupportedDtype { descr } if descr == "<f2"),
        "{e}"
    );

    let cases: &[(&str, &str)] = &[
        (
            "{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }",
            "newline",
        ),
        ("{'descr': '<f8', 'fortran_order': False}\n", "missing key"),
        (
            "{'descr': '<f8', 'fortran_order': False, 'shape': (2,), 'x': 1}\n",
            "unexpected key",
        ),
        (
            "{'descr': '<f8', 'descr': '<f8', 'fortran_order': False, 'shape': (2,)}\n",
            "twice",
        ),
        (
            "{'descr': '<f8', 'fortran_order': 0, 'shape': (2,)}\n",
            "fortran_order",
        ),
        (
            "{'descr': '<f8', 'fortran_order': False, 'shape': (2)}\n",
            "shape",
        ),
        (
            "{'descr': '<f8', 'fortran_order': False, 'shape': (-2,)}\n",
            "shape",
        ),
        (
            "{'descr': '<f8', 'fortran_order': False, 'shape': [2]}\n",
            "shape",
        ),
        (
            "{'descr': '<f8', 'fortran_order': False, 'shape': (2,)} x\n",
            "after the dict",
        ),
        ("['descr']\n", "not a dict"),
    ];
    for (dict, reason_part) in cases {
        let e = Npy::read(&header_with(dict)[..]).unwrap_err();
        match &e {
            NpyError::BadHeader { reason, .. } => {
                assert!(reason.contains(reason_part), "{dict}: {e}")
            }
            _ => panic!("{dict}: {e}"),
        }
    }
    // shapes whose size overflows, and data shorter than the shape
    let huge = "{'descr': '<f8', 'fortran_order': False, 'shape': (4294967296, 4294967296, 4294967296), }\n";
    let e = Npy::read(&header_with(huge)[..]).unwrap_err();
    assert!(matches!(e, NpyError::TooLarge { .. }), "{e}");
    let mut short = header_with("{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }\n");
    short.extend_from_slice(&1.0f64.to_le_bytes());
    let e = Npy::read(&short[..]).unwrap_err();
    assert!(
        matches!(
            e,
            NpyError::DataLength {
                expected: 24,
                found: 8,
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn a_file_with_bytes_after_the_data_is_refused() {
    let dir = std::env::temp_dir().join(format!("gradlab-npy-tail-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("tail.npy");
    let mut b = std::fs::read(fixture("f32_2x3.npy")).unwrap();
    b.push(0);
    std::fs::write(&p, &b).unwrap();
    let e = Npy::load(&p).unwrap_err();
    assert!(
        matches!(
            e,
            NpyError::DataLength {
                expected: 24,
                found: 25,
                ..
            }
        ),
        "{e}"
    );
    // a missing file names its path
    let e = Npy::load(dir.join("absent.npy")).unwrap_err();
    assert!(e.to_string().contains("absent.npy"), "{e}");
    std::fs::remove_dir_all(&dir).ok();
}
