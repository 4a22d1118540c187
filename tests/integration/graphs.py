"""Small API-format graphs for server tests."""


def node(class_type, **inputs):
    return {"class_type": class_type, "inputs": inputs}


def tiny_blur_graph(steps=4, seed=0, strength=1.0, mode="dps", sampler="euler", model_type="eps",
                    size=64, vae_kind="taesd", noise_level=0.05, extra=None):
    """Tiny UNet + tiny VAE, a blurred test pattern as measurement, DPS KSampler, saved latent."""
    graph = {
        "model": node("DPSTestTinyModel", model_type=model_type, seed=0, dtype="float32"),
        "vae": node("DPSTestTinyVAE", kind=vae_kind, seed=0),
        "cond": node("DPSTestConditioning", seed=0),
        "picture": node("DPSTestPattern", width=size, height=size, seed=1, batch_size=1),
        "blur": node("DPSGaussianBlurOperator", kernel_size=5, sigma=1.5),
        "simulate": node("DPSSimulateMeasurement", image=["picture", 0], operator=["blur", 0],
                         noise_model="gaussian", noise_level=noise_level, seed=3),
        "latent": node("DPSEmptyLatent", measurement=["simulate", 0], batch_size=1, vae=["vae", 0]),
        "sampler": node("DPSKSampler", model=["model", 0], seed=seed, steps=steps, cfg=1.0,
                        sampler_name=sampler, scheduler="normal", positive=["cond", 0], negative=["cond", 0],
                        latent_image=["latent", 0], denoise=1.0, measurement=["simulate", 0],
                        guidance_strength=strength, guidance_mode=mode, vae=["vae", 0]),
        "save": node("DPSTestSaveTensor", filename_prefix=f"blur_{seed}_{mode}", latent=["sampler", 0]),
    }
    graph.update(extra or {})
    return graph
