def tiny_config(data_path, **train):
    t = {"max_steps": 6, "batch_size": 8, "log_every": 1, "ckpt_every": 2, "keep_last": 2, "seed": 0, "device": "cpu"}
    t.update(train)
    return {
        "model": {"arch": "custom", "embed_dim": 16, "depth": 1, "num_heads": 2, "img_size": 8, "patch_size": 4,
                  "in_chans": 1, "drop_path_rate": 0.1},
        "objective": {"name": "part", "num_pairs": 6},
        "data": {"kind": "npz", "root": str(data_path), "rrc_scale": [0.5, 1.0]},
        "optim": {"lr": 1e-3, "warmup_steps": 2},
        "train": t,
    }
