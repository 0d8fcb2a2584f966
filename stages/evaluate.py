"""evaluate: segment the test split with the trained model -> instance masks, metrics, overlays
and one picture of the per-object errors per test image (plots/evaluate/errors/).

The ``postprocess:`` params used here and the scores they got go to ``--postprocess-out`` in
the model folder, which ``unetseg predict`` reads beside the card.
"""

from __future__ import annotations

import sys
from pathlib import Path

from unetseg.runtime import configure_backend

configure_backend()

from tqdm import tqdm

from unetseg import cli
from unetseg.config import load_params
from unetseg.data.ctc import prediction_name
from unetseg.files import atomic_path, write_json
from unetseg.images import write_mask
from unetseg.infer.model_folder import write_postprocess
from unetseg.infer.segmenter import Segmenter, load_weights
from unetseg.prepare.store import PreparedReader
from unetseg.score.overlays import error_image, outline_overlay, write_rgb_png
from unetseg.score.report import Evaluation
from unetseg.train.card import read_card


def main(argv: list[str] | None = None) -> None:
    parser = cli.stage_parser(__doc__)
    parser.add_argument("--prepared", type=Path, required=True, help="prepared test.h5")
    parser.add_argument("--model", type=Path, required=True, help="trained .keras model")
    parser.add_argument("--card", type=Path, required=True, help="the network's model card")
    parser.add_argument("--postprocess-out", type=Path, required=True,
                        help="output post-processing file of the model folder")
    parser.add_argument("--out", type=Path, required=True, help="predictions folder")
    parser.add_argument("--metrics", type=Path, required=True, help="metrics JSON")
    parser.add_argument("--plots", type=Path, required=True,
                        help="plots folder (overlays, errors, per-image)")
    args = parser.parse_args(argv)
    params = load_params(args.params)
    e, post = params.evaluate, params.postprocess
    card = read_card(args.card)
    segmenter = Segmenter(load_weights(args.model), card, post, e.batch_size)
    evaluation = Evaluation(post.threshold)
    with PreparedReader(args.prepared) as reader, atomic_path(args.out) as out, \
            atomic_path(args.plots) as plots:
        (out / "test").mkdir(parents=True)
        (plots / "overlays").mkdir(parents=True)
        (plots / "errors").mkdir()
        for i, s in enumerate(tqdm(reader, total=len(reader), desc="evaluate", unit="image",
                                   disable=None)):
            maps = segmenter.maps(s.image)
            labels = segmenter.label(maps)
            evaluation.add(s.name, s.mask, labels, maps[..., 0])
            write_mask(out / "test" / prediction_name(s.name), labels)
            write_rgb_png(plots / "errors" / f"{s.name}.png",
                          error_image(s.image, s.mask, labels, evaluation.matchings[-1]))
            if i < e.n_overlays:
                write_rgb_png(plots / "overlays" / f"{s.name}.png",
                              outline_overlay(s.image, s.mask, labels))
        write_json(plots / "per_image.json", evaluation.per_image)
    summary = evaluation.summary()
    write_json(args.metrics, summary)
    write_postprocess(args.postprocess_out, post, {k: summary[k] for k in evaluation.SCORES})


if __name__ == "__main__":
    sys.exit(cli.run(main))
