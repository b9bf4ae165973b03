"""Order ids: a random tail drawn in bulk from the OS's CSPRNG, same shape as ever."""

from __future__ import annotations

import os
import re

from checkout import ids
from checkout.ids import ORDER_ID_PATTERN, ProductId, new_order_id, product_of_order


def test_an_order_id_is_its_product_a_dot_and_16_hex_digits() -> None:
    order = new_order_id(ProductId("p_0123abcd"))
    assert re.fullmatch(ORDER_ID_PATTERN, order)
    product, _, tail = order.rpartition(".")
    assert product == "p_0123abcd" and product_of_order(order) == product
    assert re.fullmatch(r"[0-9a-f]{16}", tail)


def test_ids_stay_unique_across_several_draws() -> None:
    # Three draws and a bit: every refill brings new randomness, none is handed out twice.
    count = 3 * ids._TAILS_PER_DRAW + 7
    tails = [new_order_id(ProductId("p")).rpartition(".")[2] for _ in range(count)]
    assert len(set(tails)) == count
    assert all(re.fullmatch(r"[0-9a-f]{16}", t) for t in tails)


def test_a_forked_child_does_not_reuse_the_parents_tails() -> None:
    new_order_id(ProductId("p"))  # the parent holds a drawn batch
    assert ids._tails
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its first id, then out without running any test teardown
        try:
            os.write(write, new_order_id(ProductId("p")).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        child = pipe.read().decode()
    os.waitpid(pid, 0)
    assert re.fullmatch(ORDER_ID_PATTERN, child)
    assert child != new_order_id(ProductId("p"))  # the parent's next one, from its batch
