"""Attribute a batch sharded over devices with jax.sharding (our distributed engine).

    XLA_FLAGS=--xla_force_host_platform_device_count=8 python examples/sharded.py

The batch axis is split over every device; the explainer is an ordinary jitted, vmapped function,
and its output stays sharded the same way.
"""

import jax
import jax.numpy as jnp
import numpy as np

import jaxplain as jx
from jaxplain import flax as jxf
from jaxplain import zoo


def main():
    model = zoo.VGG(features=(8, 16), classes=4)
    variables = model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)))
    f = jxf.from_linen(model, variables)

    devices = jax.devices()
    mesh = jax.sharding.Mesh(np.array(devices), ("batch",))
    batch = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("batch"))
    n = 4 * len(devices)
    xs = jax.device_put(jax.random.uniform(jax.random.key(1), (n, 32, 32, 3)), batch)
    ts = jax.device_put(jnp.arange(n) % 4, batch)

    explain = jax.jit(jax.vmap(jx.integrated_gradients(f, steps=16)))
    attrs = explain(xs, ts)
    print(f"{n} images on {len(devices)} devices -> attributions {attrs.shape}, {attrs.sharding}")
    return attrs


if __name__ == "__main__":
    main()
