"""The schedule and LAMB update against hand computations of the reference formulas."""

import numpy as np
import pytest

import keras

from albert_keras.optimization import AlbertLamb, WarmupPolynomialDecay, create_optimizer


def test_schedule_warms_up_then_decays_linearly_to_zero():
    schedule = WarmupPolynomialDecay(1e-3, total_steps=100, warmup_steps=10)
    values = [float(schedule(step)) for step in (0, 5, 10, 55, 100, 150)]
    np.testing.assert_allclose(values, [0.0, 5e-4, 9e-4, 4.5e-4, 0.0, 0.0], atol=1e-9)
    restored = WarmupPolynomialDecay.from_config(schedule.get_config())
    assert float(restored(55)) == pytest.approx(4.5e-4)
    with pytest.raises(ValueError, match="warmup_steps"):
        WarmupPolynomialDecay(1e-3, total_steps=10, warmup_steps=20)


def reference_lamb_step(w, g, lr, decay, beta_1=0.9, beta_2=0.999, eps=1e-6):
    m = (1 - beta_1) * g
    v = (1 - beta_2) * g * g
    update = m / (np.sqrt(v) + eps)
    if decay:
        update = update + 0.01 * w
        ratio = np.linalg.norm(w) / np.linalg.norm(update)
        update = ratio * update
    return w - lr * update


@pytest.mark.parametrize("fusion", ["plain", "xla_cpu"])
def test_lamb_matches_reference_update_and_exclusions(fusion):
    """Both forms of the update: TensorFlow ops ("plain") and one XLA pass per variable."""
    kernel = keras.Variable(np.array([[0.5, -1.0], [2.0, 0.1]], "float32"), name="kernel")
    bias = keras.Variable(np.array([0.3, -0.2], "float32"), name="bias")
    grads = [np.array([[0.1, 0.2], [-0.3, 0.05]], "float32"), np.array([0.01, -0.4], "float32")]
    expected = [reference_lamb_step(kernel.numpy(), grads[0], 0.1, decay=True),
                reference_lamb_step(bias.numpy(), grads[1], 0.1, decay=False)]
    optimizer = AlbertLamb(learning_rate=0.1, fusion=fusion)
    optimizer.apply_gradients(zip(grads, [kernel, bias]))
    np.testing.assert_allclose(kernel.numpy(), expected[0], rtol=1e-5)
    np.testing.assert_allclose(bias.numpy(), expected[1], rtol=1e-5)


def test_create_optimizer_variants():
    lamb = create_optimizer("lamb", total_steps=10, warmup_steps=2)
    assert isinstance(lamb, keras.optimizers.Lamb) and lamb.clip_norm == 1.0
    assert AlbertLamb.from_config(lamb.get_config()).weight_decay_rate == 0.01
    assert lamb.fusion == "plain"
    assert AlbertLamb.from_config(
        create_optimizer("lamb", fusion="xla").get_config()).fusion == "xla"
    saved_before = dict(lamb.get_config(), kernels="xla_cpu")  # fusion's former name
    del saved_before["fusion"]
    assert AlbertLamb.from_config(saved_before).fusion == "xla_cpu"
    adamw = create_optimizer("adamw", total_steps=10, warmup_steps=2)
    assert isinstance(adamw, keras.optimizers.AdamW)
    with pytest.raises(ValueError, match="Unknown optimizer"):
        create_optimizer("sgd")


@pytest.mark.parametrize("name", ["lamb", "adamw"])
def test_repeated_embedding_rows_are_summed_before_clipping_and_update(name):
    """A gathered embedding's gradient holds one slice per occurrence; clipping by the
    global norm and the moments must see the summed rows (the dense gradient)."""
    import tensorflow as tf

    # Row 1 appears three times: its gradient is [3, 0] (norm 3, clipped to 1), while
    # the slices' norm is sqrt(59) and their squares sum to [27, 32].
    values = tf.constant([[3.0, 4.0], [-3.0, -4.0], [3.0, 0.0]])
    sparse = tf.IndexedSlices(values, tf.constant([1, 1, 1]), tf.constant([4, 2]))
    dense = tf.convert_to_tensor(sparse)
    np.testing.assert_allclose(dense.numpy()[1], [3.0, 0.0])
    second = tf.constant([[0.0, 0.0], [0.1, 0.2], [0.0, 0.0], [0.0, 0.0]])

    def trained(first):
        table = keras.Variable(np.ones((4, 2), "float32"), name="word_embeddings")
        optimizer = create_optimizer(name, learning_rate=0.1, total_steps=10, warmup_steps=0,
                                     clip_norm=1.0)
        # The second step's moments mix in the first's clipped gradient.
        for gradient in (first, second):
            optimizer.apply_gradients([(gradient, table)])
        return table.numpy()

    np.testing.assert_allclose(trained(sparse), trained(dense), atol=1e-7)
