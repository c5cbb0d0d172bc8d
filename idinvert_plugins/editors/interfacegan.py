"""InterFaceGAN (Shen et al. CVPR 2020): editing directions as the normals of linear attribute boundaries.

:func:`learn_direction` fits one boundary to codes and their attribute scores. :func:`learn_generator_directions`
does the whole job for a generator: sample ``z``, map it to ``w`` (truncation 1), render
``G.synthesis(w, noise_mode="const")`` in batches, score each image with an attribute predictor, then fit one
linear boundary per score in W; the boundary's unit normal is the editing direction and its held-out accuracy
is stored with it (``idinvert directions learn``; saving and lookup by name are in :mod:`.directions`).

A predictor is any callable ``images [N, C, R, R] -> {name: scores [N]}``: one direction is learned per
returned name. Scores made only of 0 and 1 are labels; any other scores are ranked and the top and bottom
``ratio`` of the samples are the positives and negatives. The default 0.5 splits at the median: InterFaceGAN
keeps only the extremes (2 % of 500k samples), but with a wide gap between the classes a regularised linear
classifier tilts its normal towards W's high-variance axes (on a tiny random StyleGAN2 with a known linear
score: cosine with the truth 0.99 at ratio 0.5, 0.87 at 0.25, 0.77 at 0.1 with logistic regression).

:class:`ClassifierScorer` makes such a predictor from a domain's attribute classifier (the ``classifier`` of
the generator's pipeline or domain, :mod:`idinvert_plugins.models.classifier`). It turns each head into scores as
follows (the choice of what a "direction" of each attribute means):

* binary head (eyeglasses): the label ``sigmoid(logit) > 0.5``; direction ``eyeglasses``;
* continuous head (smile, age, yaw, ...): the predicted value, ranked (extremes vs extremes);
  direction ``smile``;
* categorical head (hair_color, hair_style, background): one direction per class, one-vs-rest on the
  predicted class (``argmax == k``), named ``<attribute>-<class>`` (``hair_color-blond``). A categorical
  attribute has no single linear order, so "more blond" is the meaningful edit;
* cyclic heads (hues) have no linear boundary and are not learned.

By default only the semantic attributes of the classifier's domain are learned (not its nuisance factors; the
domain whose schema holds the classifier's heads, :func:`~idinvert_plugins.domains.domain_of_heads`); ``attributes=
"all"`` takes every non-cyclic head. Labels with fewer than ``min_positive`` samples in a class are skipped
and reported (a random or collapsed generator may never produce, say, glasses).

Generators without a single W space (IDInvert's StyleGAN, whose mapping emits one w per layer) are learned
in W+: the boundary is fitted on the flattened ``[L * w_dim]`` codes and stored per layer.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, get_args

import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..models.base import Generator
from .directions import Direction

Scorer = Callable[[torch.Tensor], Mapping[str, torch.Tensor]]


def _sklearn():
    try:
        import sklearn.linear_model
        import sklearn.svm
    except ImportError:
        raise ImportError("learn_direction needs scikit-learn: pip install 'idinvert-plugins[edit]'") from None
    return sklearn


#: How a boundary becomes an edit vector. :func:`learn_direction` makes the first three; the two
#: ``conditional`` ones need the whole set of boundaries and are made by :func:`directions_from_scores`
#: (:func:`conditional_steering`).
Steering = Literal["normal", "covariance", "class-means", "conditional", "conditional-class-means", "compensated"]
STEERINGS: tuple[str, ...] = get_args(Steering)
#: The steering each set-wide one starts from before the other families are taken out
#: (:func:`conditional_steering`, :func:`compensated_steering`).
CONDITIONAL_BASE: dict[str, str] = {"conditional": "normal", "conditional-class-means": "class-means",
                                    "compensated": "class-means"}


def learn_direction(
    codes: torch.Tensor,
    scores: torch.Tensor,
    *,
    method: Literal["logistic", "svm"] = "logistic",
    steer: Steering = "normal",
    holdout: float = 0.2,
    seed: int = 0,
    ratio: float = 0.5,
    name: str = "",
    attribute: str | None = None,
    layers: Sequence[int] | None = None,
) -> Direction:
    """InterFaceGAN: the unit normal of a linear boundary separating ``codes`` ``[N, w_dim]`` by ``scores`` ``[N]``.

    Binary scores (only 0 and 1) are the labels. Otherwise the ``ratio`` of codes with the highest scores are
    positives and the same number with the lowest are negatives (0.5: split at the median; InterFaceGAN keeps
    the extreme 2 % of 500k samples). A ``holdout`` fraction (shuffled with ``seed``) is kept out of training
    and gives ``accuracy``. The normal points towards the positives.

    ``steer`` picks the edit vector. ``"normal"`` (InterFaceGAN) edits along the boundary's normal ``n``.
    ``"covariance"`` edits along ``Sigma n`` (``Sigma``: the covariance of ``codes``), which is the normal
    taken in the whitened latent space and mapped back: the shift that changes the code's side of the
    boundary most per unit of the latent distribution's own spread. In a strongly anisotropic W the plain
    normal leans on directions the codes hardly vary along (for a linear discriminant it is
    ``Sigma^-1 (mu_1 - mu_0)``), which can classify well but edit weakly or off-distribution; the steered
    vector (``mu_1 - mu_0`` for that discriminant) follows how the attribute actually varies.
    ``"class-means"`` edits along ``mu_1 - mu_0`` itself, the difference of the training positives' and
    negatives' mean codes: what ``"covariance"`` approximates when the boundary is a linear discriminant. The
    two differ when the logistic boundary is not one, as for rare classes in high-dimensional W+, where the
    class means edited the StyleGAN v1 twin's auburn and red hair more reliably (``docs/directions.md``).
    The boundary is kept as the direction's ``normal`` for scoring codes. Both are unit vectors.
    """
    if method not in ("logistic", "svm"):
        raise ValueError(f"method must be 'logistic' or 'svm', got {method!r}")
    if steer in CONDITIONAL_BASE:
        raise ValueError(f"steer={steer!r} conditions one direction on the boundaries of the others, so it is "
                         "made for a whole set: use directions_from_scores(..., steer=...) or "
                         "conditional_steering(directions)")
    if steer not in STEERINGS:
        raise ValueError(f"steer must be one of {', '.join(map(repr, STEERINGS))}, got {steer!r}")
    if not 0 <= holdout < 1:
        raise ValueError(f"holdout must be in [0, 1), got {holdout}")
    codes = torch.as_tensor(codes).detach().double().cpu()
    scores = torch.as_tensor(scores).detach().double().cpu().flatten()
    if codes.ndim != 2 or codes.shape[0] != scores.shape[0]:
        raise ValueError(f"codes must be [N, w_dim] with one score each, got {list(codes.shape)} and "
                         f"{list(scores.shape)} scores")
    if set(scores.unique().tolist()) <= {0.0, 1.0}:
        x, y = codes, scores.long()
    else:
        if not 0 < ratio <= 0.5:
            raise ValueError(f"ratio must be in (0, 0.5], got {ratio}")
        k = int(len(scores) * ratio)
        order = scores.argsort()
        x = torch.cat([codes[order[-k:]], codes[order[:k]]])
        y = torch.cat([torch.ones(k, dtype=torch.long), torch.zeros(k, dtype=torch.long)])
    if y.unique().numel() < 2:
        raise ValueError("scores give a single class; a boundary needs positives and negatives")

    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    n_val = int(round(len(y) * holdout))
    val, train = perm[:n_val], perm[n_val:]
    sk = _sklearn()
    if method == "svm":
        clf = sk.svm.LinearSVC(C=1.0, dual="auto", max_iter=10_000, random_state=seed)
    else:
        clf = sk.linear_model.LogisticRegression(max_iter=2_000)
    clf.fit(x[train].numpy(), y[train].numpy())
    accuracy = float(clf.score(x[val].numpy(), y[val].numpy())) if n_val else None
    normal = torch.from_numpy(clf.coef_.reshape(-1)).double()
    normal = normal / normal.norm()
    vector, boundary, source = normal, None, f"interfacegan-{method}"
    if steer == "covariance":
        centred = codes - codes.mean(0)
        vector = centred.T @ (centred @ normal) / max(len(codes) - 1, 1)  # Sigma n without forming Sigma
        boundary, source = normal, f"{source}-covariance"
    elif steer == "class-means":
        xt, yt = x[train], y[train]
        vector = xt[yt == 1].mean(0) - xt[yt == 0].mean(0)
        boundary, source = normal, f"{source}-class-means"
    return Direction(vector.float(), name=name or attribute or "", attribute=attribute,
                     layers=list(layers) if layers is not None else None, accuracy=accuracy,
                     source=source, extra={"n_train": len(train), "n_holdout": n_val},
                     normal=boundary.float() if boundary is not None else None)


class ClassifierScorer:
    """Scores for direction learning from an attribute classifier (see the module docstring for the rules).

    ``attributes``: None (the semantic attributes of the domain whose schema holds the classifier's heads, or
    every non-cyclic head of a classifier of no registered domain), ``"all"`` (every non-cyclic head) or a list
    of head names. Images of another resolution than the classifier's are resized (area downsampling / bilinear
    upsampling).
    """

    def __init__(self, classifier: torch.nn.Module, attributes: Sequence[str] | str | None = None) -> None:
        heads = {a["name"]: a for a in classifier.attributes}
        usable = [n for n, a in heads.items() if not a.get("cyclic")]
        from ..domains import domain_of_heads

        self.domain = domain_of_heads(heads)
        if attributes is None:
            semantic = set(self.domain.semantic_attributes) if self.domain is not None else set()
            chosen = [n for n in usable if n in semantic] or usable
        elif attributes == "all":
            chosen = usable
        else:
            chosen = [attributes] if isinstance(attributes, str) else list(attributes)
            unknown = [n for n in chosen if n not in heads]
            if unknown:
                raise ValueError(f"the classifier has no attribute(s) {unknown}; it has: {', '.join(heads)}")
            cyclic = [n for n in chosen if heads[n].get("cyclic")]
            if cyclic:
                raise ValueError(f"{cyclic} are cyclic (hues): a linear boundary cannot separate a circle, so no "
                                 "direction is learned for them; choose other attributes")
        self.classifier = classifier.eval()
        self.heads = [heads[n] for n in chosen]
        self.resolution = int(classifier.resolution)

    def class_names(self, head: dict[str, Any]) -> list[str]:
        """Names of a categorical head's classes (the domain schema's names when they match, else indices)."""
        if self.domain is not None:
            return self.domain.class_names(head["name"], head["num_classes"])
        return [str(i) for i in range(head["num_classes"])]

    @property
    def names(self) -> list[str]:
        """The direction names this scorer produces, in order."""
        out = []
        for h in self.heads:
            if h["kind"] == "categorical":
                out += [f"{h['name']}-{c}" for c in self.class_names(h)]
            else:
                out.append(h["name"])
        return out

    def describe(self, name: str) -> dict[str, Any]:
        """What the scores of direction ``name`` are (written into the summary)."""
        attr, _, cls = name.partition("-")
        head = next(h for h in self.heads if h["name"] == (attr if cls else name))
        if head["kind"] == "binary":
            return {"attribute": name, "label": "classifier probability > 0.5"}
        if head["kind"] == "categorical":
            return {"attribute": attr, "label": f"predicted class == {cls} (one vs rest)"}
        return {"attribute": name, "label": "predicted value, ranked (top vs bottom)"}

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        x = images.float()
        if x.shape[-1] != self.resolution:
            mode = "area" if x.shape[-1] > self.resolution else "bilinear"
            x = F.interpolate(x, size=(self.resolution, self.resolution), mode=mode,
                              **({"align_corners": False} if mode == "bilinear" else {}))
        raw = self.classifier(x.clamp(-1, 1))
        out: dict[str, torch.Tensor] = {}
        for h in self.heads:
            y = raw[h["name"]].float()
            if h["kind"] == "binary":
                out[h["name"]] = (y > 0).float()  # sigmoid(y) > 0.5
            elif h["kind"] == "categorical":
                pred = y.argmax(dim=1)
                for k, c in enumerate(self.class_names(h)):
                    out[f"{h['name']}-{c}"] = (pred == k).float()
            else:
                out[h["name"]] = y
        return out


@torch.no_grad()
def sample_w(G: Generator, n: int, seed: int = 0, batch: int = 256, progress: bool = True,
             render: Callable[[torch.Tensor], torch.Tensor] | None = None, scorer: Scorer | None = None
             ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """``n`` codes ``w = mapping(z)`` (truncation 1; ``[n, w_dim]``, or W+ ``[n, L, w_dim]`` for models without a
    W space) and, with a ``scorer``, its scores of ``render(w)`` (default ``G.synthesis(w, noise_mode="const")``)
    concatenated per name. Runs in batches with a progress bar."""
    if n < 2:
        raise ValueError(f"n must be at least 2, got {n}")
    device = G.w_avg.device
    render = render or (lambda w: G.synthesis(w, noise_mode="const"))
    z = G.sample_z(n, seed=seed, device=device)
    codes, scores = [], {}
    for start in tqdm(range(0, n, batch), desc="sample + score", unit="batch", disable=not progress):
        w = G.mapping(z[start : start + batch])
        codes.append(w.cpu())
        if scorer is not None:
            for name, s in scorer(render(w)).items():
                scores.setdefault(name, []).append(torch.as_tensor(s).detach().float().cpu().reshape(-1))
    return torch.cat(codes), {k: torch.cat(v) for k, v in scores.items()}


def directions_from_scores(
    codes: torch.Tensor,
    scores: Mapping[str, torch.Tensor],
    *,
    ratio: float = 0.5,
    holdout: float = 0.2,
    method: Literal["logistic", "svm"] = "logistic",
    steer: Steering = "normal",
    seed: int = 0,
    min_positive: int = 10,
    describe: Callable[[str], dict[str, Any]] | None = None,
    progress: bool = True,
) -> tuple[list[Direction], dict[str, str]]:
    """One InterFaceGAN direction per score name; returns the directions and ``{name: reason}`` for the
    names that could not be learned (a label with fewer than ``min_positive`` samples in one class, or
    constant scores). W+ codes ``[N, L, D]`` give per-layer directions. ``steer="conditional"`` /
    ``"conditional-class-means"`` learn the normals / class-mean vectors, then apply
    :func:`conditional_steering` to the whole set."""
    if steer in CONDITIONAL_BASE:
        learned, skipped = directions_from_scores(
            codes, scores, ratio=ratio, holdout=holdout, method=method, steer=CONDITIONAL_BASE[steer],  # type: ignore[arg-type]
            seed=seed, min_positive=min_positive, describe=describe, progress=progress)
        steered = compensated_steering(learned) if steer == "compensated" else conditional_steering(learned)
        return steered, skipped
    codes = torch.as_tensor(codes).detach().float()
    per_layer = codes.ndim == 3
    flat = codes.reshape(len(codes), -1)
    learned, skipped = [], {}
    for name, s in tqdm(list(scores.items()), desc="fit boundaries", unit="direction", disable=not progress):
        s = torch.as_tensor(s).double().reshape(-1)
        if len(s) != len(codes):
            raise ValueError(f"scores {name!r} has {len(s)} values for {len(codes)} codes")
        info = dict(describe(name)) if describe else {"attribute": name}
        if float(s.max() - s.min()) == 0.0:
            skipped[name] = "the scores are constant"
            continue
        if set(s.unique().tolist()) <= {0.0, 1.0}:
            pos = int(s.sum())
            if min(pos, len(s) - pos) < min_positive:
                skipped[name] = (f"{pos} of {len(s)} samples are positive: too few of one class for a boundary "
                                 f"(need {min_positive}; sample more with a larger n)")
                continue
            info["positive_share"] = pos / len(s)
            info["majority"] = max(pos, len(s) - pos) / len(s)
        else:
            info["note"] = (f"split at the median of {len(s)} scores" if ratio == 0.5 else
                            f"top/bottom {ratio:.0%} of {len(s)} ranked scores")
        d = learn_direction(flat, s, method=method, steer=steer, holdout=holdout, seed=seed, ratio=ratio,
                            name=name, attribute=info.pop("attribute", name))
        if per_layer:
            shape = (codes.shape[1], codes.shape[2])
            d = Direction(d.vector.view(shape), name=d.name, attribute=d.attribute, accuracy=d.accuracy,
                          source=d.source, extra=d.extra,
                          normal=d.normal.view(shape) if d.normal is not None else None)
        d.extra.update(n_samples=len(codes), space="wp" if per_layer else "w", **info)
        learned.append(d)
    return learned, skipped


def family(direction: Direction) -> str:
    """The attribute family of a direction: its classifier head (``hair_color`` for ``hair_color-blond``).
    Directions of one family move together by construction (more blond is less black), so cross-talk and
    conditioning only look at the other families."""
    return direction.attribute or direction.name.partition("-")[0]


def _other_families(d: Direction, directions: Sequence[Direction]) -> list[Direction]:
    """The directions of ``directions`` whose attribute family differs from ``d``'s (what a steering keeps still)."""
    return [o for o in directions if o is not d and family(o) != family(d)]


def conditional_steering(directions: Sequence[Direction]) -> list[Direction]:
    """InterFaceGAN's conditional manipulation for a whole set: each direction's edit vector with its component
    along the boundary normals of every direction of *another* family (:func:`family`) projected out, so that
    an edit leaves their linear scores unchanged (:func:`~.directions.orthogonalize`, per layer for W+
    directions). The boundary is kept for scoring; the source gains ``-conditional`` (a normal-steered source)
    or ``-conditional-class-means`` (a class-means-steered one). On the bundled generators the attributes are
    correlated in W, so the plain normal of, say, eyeglasses also moves skin tone: this removes that part.
    """
    from .directions import orthogonalize

    out = []
    for d in directions:
        others = _other_families(d, directions)
        if not others:
            out.append(d)
            continue
        c = orthogonalize(d, others)
        base = d.source
        source = (base[: -len("-class-means")] + "-conditional-class-means" if base.endswith("-class-means")
                  else base + "-conditional")
        extra = {**d.extra, "conditioned_on": sorted({family(o) for o in others})}
        out.append(Direction(c.vector, name=d.name, attribute=d.attribute, layers=d.layers, accuracy=d.accuracy,
                             source=source, extra=extra, normal=d.boundary))
    return out


def compensated_steering(directions: Sequence[Direction], ridge: float = 1e-3) -> list[Direction]:
    """Each direction's edit vector minus the combination of the *other families'* edit vectors that cancels
    its effect on their boundaries: ``v = v_t - sum_k c_k v_k`` with ``c`` solving ``n_j . v = 0`` for every
    other-family boundary normal ``n_j`` (least squares, ``ridge`` times the mean diagonal added).

    :func:`conditional_steering` removes the other boundaries' normals themselves, which in an anisotropic W are
    directions the codes hardly vary along, so the edit leaves the distribution; this removes them along the
    other attributes' own edit vectors (for class-mean vectors: directions the codes do vary along), so the
    edit stays where the generator draws faces and the other attributes' linear scores stay unchanged. W+
    directions are handled flattened. Source suffix ``-compensated`` (replacing ``-class-means``)."""
    out = []
    for d in directions:
        others = _other_families(d, directions)
        if not others:
            out.append(d)
            continue
        v = d.vector.double().reshape(-1)
        M = torch.stack([o.vector.double().reshape(-1) for o in others])  # [K, P] their edit vectors
        N = torch.stack([o.boundary.double().reshape(-1) for o in others])  # [K, P] their boundaries
        if M.shape[1] != v.numel():
            raise ValueError("directions to compensate have different shapes")
        A = N @ M.T  # [K, K]: effect of each other edit vector on each other boundary
        A = A + ridge * float(A.diagonal().abs().mean()) * torch.eye(len(others), dtype=A.dtype)
        c = torch.linalg.solve(A, N @ v)
        rest = v - M.T @ c
        if float(rest.norm()) < 1e-6:
            raise ValueError(f"direction {d.name!r} is a combination of the other attributes' edits; nothing is left")
        base = d.source[: -len("-class-means")] if d.source.endswith("-class-means") else d.source
        extra = {**d.extra, "compensated_for": sorted({family(o) for o in others})}
        out.append(Direction(rest.view(d.vector.shape).float(), name=d.name, attribute=d.attribute, layers=d.layers,
                             accuracy=d.accuracy, source=f"{base}-compensated", extra=extra, normal=d.boundary))
    return out


def learn_generator_directions(
    G: Generator,
    scorer: Scorer,
    *,
    n: int = 20_000,
    seed: int = 0,
    batch: int = 256,
    ratio: float = 0.5,
    holdout: float = 0.2,
    method: Literal["logistic", "svm"] = "logistic",
    steer: Steering = "normal",
    min_positive: int = 10,
    render: Callable[[torch.Tensor], torch.Tensor] | None = None,
    progress: bool = True,
) -> tuple[list[Direction], dict[str, str]]:
    """InterFaceGAN for a generator: sample ``n`` codes in W, score ``render(w)`` with ``scorer`` (any callable
    ``images -> {name: [N] scores}``), learn one direction per name. Returns ``(directions, skipped)``.

    ``render`` replaces ``G.synthesis(w, noise_mode="const")`` (e.g. to score the codes themselves).
    """
    codes, scores = sample_w(G, n, seed=seed, batch=batch, progress=progress, render=render, scorer=scorer)
    if not scores:
        raise ValueError("the scorer returned no scores: nothing to learn")
    describe = getattr(scorer, "describe", None)
    return directions_from_scores(codes, scores, ratio=ratio, holdout=holdout, method=method, steer=steer,
                                  seed=seed, min_positive=min_positive, describe=describe, progress=progress)


__all__ = ["ClassifierScorer", "Scorer", "compensated_steering", "conditional_steering", "directions_from_scores",
           "family", "learn_direction", "learn_generator_directions", "sample_w"]
