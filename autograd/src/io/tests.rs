//! Tests of the codec and the atomic write.

use super::*;
use safetensors::tensor::Dtype;
use std::path::{Path, PathBuf};

fn scratch(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("gradlab-io-{tag}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

fn sample() -> TensorFile {
    let mut f = TensorFile::default();
    f.tensors.insert(
        "a.weight".into(),
        StoredTensor::from_float(&Tensor::from_vec(vec![1.5f32, -2.0, 3.25], [3]).unwrap()),
    );
    f.tensors.insert(
        "b".into(),
        StoredTensor::from_float(&Tensor::from_vec(vec![0.1f64; 6], [2, 3]).unwrap()),
    );
    f.tensors.insert(
        "count".into(),
        StoredTensor::from_integer(&Tensor::scalar(7.0f64)),
    );
    f.metadata.insert("format".into(), "pt".into());
    f
}

#[test]
fn bytes_round_trip_every_type_and_the_metadata() {
    let f = sample();
    let back = TensorFile::from_bytes(&f.to_bytes().unwrap()).unwrap();
    assert_eq!(back, f);
    assert_eq!(
        back.get("count")
            .unwrap()
            .integer_to_float::<f64>("count")
            .unwrap()
            .item()
            .unwrap(),
        7.0
    );
    assert_eq!(back.meta("format").unwrap(), "pt");
}

#[test]
fn mismatches_name_the_tensor() {
    let f = sample();
    let e = f
        .get("a.weight")
        .unwrap()
        .to_float::<f64>("a.weight")
        .unwrap_err();
    assert_eq!(e.to_string(), "tensor \"a.weight\" is F32, expected F64");
    let e = f.get("b").unwrap().expect_dims("b", &[3, 2]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "tensor \"b\" has shape [2, 3], expected [3, 2]"
    );
    let e = f.get("missing").unwrap_err();
    assert!(matches!(&e, Error::Missing { name } if name == "missing"));
    let e = f.check_no_extra(|n| n != "count").unwrap_err();
    assert!(matches!(&e, Error::Unexpected { name } if name == "count"));
    let e = f.meta_parse::<u64>("format").unwrap_err();
    assert_eq!(
        e.to_string(),
        "metadata \"format\" = \"pt\" does not parse as u64"
    );
}

#[test]
fn corrupt_files_are_errors_naming_the_file_and_tensor() {
    let bytes = sample().to_bytes().unwrap();
    // truncated anywhere: an error, never a panic
    for cut in [0, 4, 8, 20, bytes.len() / 2, bytes.len() - 1] {
        let e = TensorFile::from_bytes(&bytes[..cut]).unwrap_err();
        assert!(matches!(e, Error::Corrupt { .. }), "cut {cut}: {e}");
    }
    // a header whose byte range for "b" is one element short
    let n = u64::from_le_bytes(arr(&bytes[..8])) as usize;
    let header = std::str::from_utf8(&bytes[8..8 + n]).unwrap();
    let v: serde_json::Value = serde_json::from_str(header).unwrap();
    let shape_b = v["b"]["shape"].clone();
    assert_eq!(shape_b, serde_json::json!([2, 3]));
    let bad = header.replacen("\"shape\":[2,3]", "\"shape\":[2,4]", 1);
    assert_ne!(bad, header);
    let mut edited = (bad.len() as u64).to_le_bytes().to_vec();
    edited.extend_from_slice(bad.as_bytes());
    edited.extend_from_slice(&bytes[8 + n..]);
    let e = TensorFile::from_bytes(&edited).unwrap_err();
    assert!(e.to_string().contains("tensor \"b\""), "{e}");
    assert!(
        e.to_string()
            .starts_with("\"<memory>\" is not a valid safetensors file"),
        "{e}"
    );
    // a missing file names the path
    let e = TensorFile::load("/nonexistent/x.safetensors").unwrap_err();
    assert!(
        matches!(&e, Error::Io { path, .. } if path == Path::new("/nonexistent/x.safetensors"))
    );
}

#[test]
fn other_dtypes_are_read_and_named_not_loaded() {
    let raw = Raw {
        dtype: Dtype::BF16,
        shape: vec![2],
        data: vec![0; 4],
    };
    let bytes = safetensors::serialize([("h", &raw)], &None).unwrap();
    let f = TensorFile::from_bytes(&bytes).unwrap();
    let e = f.get("h").unwrap().to_float::<f32>("h").unwrap_err();
    assert_eq!(e.to_string(), "tensor \"h\" is BF16, expected F32");
    assert!(matches!(f.to_bytes().unwrap_err(), Error::Corrupt { .. }));
}

fn leftovers(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp") && n.starts_with('.'))
        .collect()
}

#[test]
fn a_failed_write_leaves_no_temporary_file_and_the_target_unchanged() {
    let dir = scratch("fail");
    // renaming a file over a non-empty directory fails after the temporary file exists
    let target = dir.join("state.safetensors");
    fs::create_dir(&target).unwrap();
    fs::write(target.join("keep"), b"x").unwrap();
    let e = write_atomic(&target, b"new").unwrap_err();
    assert!(
        matches!(&e, Error::Io { path, .. } if *path == target),
        "{e}"
    );
    assert!(leftovers(&dir).is_empty(), "{:?}", leftovers(&dir));
    assert_eq!(fs::read(target.join("keep")).unwrap(), b"x");
    // no directory at all: nothing is created
    let e = write_atomic(&dir.join("no/such/dir/f"), b"x").unwrap_err();
    assert!(matches!(e, Error::Io { .. }));
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_users_own_tmp_file_survives() {
    let dir = scratch("usertmp");
    let target = dir.join("model.safetensors");
    let theirs = dir.join("model.safetensors.tmp");
    fs::write(&theirs, b"the user's notes").unwrap();
    sample().save(&target).unwrap();
    sample().save(&target).unwrap();
    assert_eq!(fs::read(&theirs).unwrap(), b"the user's notes");
    assert_eq!(TensorFile::load(&target).unwrap(), sample());
    assert!(leftovers(&dir).is_empty());
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn concurrent_saves_to_one_path_all_succeed_with_one_complete_version() {
    let dir = scratch("concurrent");
    let target = dir.join("shared.safetensors");
    let versions: Vec<TensorFile> = (0..6)
        .map(|k| {
            let mut f = TensorFile::default();
            // different sizes, so a mix of two versions could not parse as either
            let t = Tensor::from_vec(vec![k as f64; 1000 * (k + 1)], [1000 * (k + 1)]).unwrap();
            f.tensors.insert("w".into(), StoredTensor::from_float(&t));
            f.metadata.insert("writer".into(), k.to_string());
            f
        })
        .collect();
    std::thread::scope(|s| {
        let handles: Vec<_> = versions
            .iter()
            .map(|v| s.spawn(|| (0..5).try_for_each(|_| v.save(&target))))
            .collect();
        for h in handles {
            h.join().unwrap().unwrap();
        }
    });
    let got = TensorFile::load(&target).unwrap();
    assert!(versions.contains(&got));
    assert!(leftovers(&dir).is_empty(), "{:?}", leftovers(&dir));
    fs::remove_dir_all(&dir).unwrap();
}

#[cfg(unix)]
#[test]
fn an_existing_files_permissions_are_kept() {
    use std::os::unix::fs::PermissionsExt;
    let dir = scratch("mode");
    let target = dir.join("secret.safetensors");
    for mode in [0o600, 0o640] {
        fs::write(&target, b"old").unwrap();
        fs::set_permissions(&target, fs::Permissions::from_mode(mode)).unwrap();
        sample().save(&target).unwrap();
        let got = fs::metadata(&target).unwrap().permissions().mode() & 0o777;
        assert_eq!(got, mode);
    }
    fs::remove_dir_all(&dir).unwrap();
}
