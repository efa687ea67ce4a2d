"""Implicit RL via supervised learning (IRvS, Piche et al. 2022, seeds/irvs_paper.txt).

An energy model E(s, a, G) over the action and the return-to-go given the observation, trained
with InfoNCE like IBC (counter-examples over (a, G) by DFO-uniform draws or Langevin); acting
minimises the exponential tilt E(s, a, G) - G / eta over (a, G) (eq. 8), so with 1/eta = 0 the
policy follows the data's most likely behaviour and with large 1/eta the best-return behaviour
the data supports. Returns come from the recorded episodes (returns.py), which makes failed and
slow demonstrations useful data.

    ibc-train train_irvs_push data.path=data/irvs/push_mixed run.out_dir=runs/irvs_push
    Policy.load("runs/irvs_push/policy.pt", overrides=["irvs.inverse_eta=2.0"])

Modules: returns (returns from episodes, the dataset with returns), models/return_energy (the energy model
and its tilted inference), trainer (IRvSTrainer, chosen by ibc-train for model.kind: irvs),
mix (merge datasets, e.g. oracle + noisy-oracle demonstrations: `ibc-data mix`).
"""
