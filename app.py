"""StackGAN demo: `python app.py [--model PATH|REPO_ID] [--host HOST] [--port PORT] [--device DEVICE] [--compile]`.

With no --model it serves the bundled Shapes model (demo/pretrained/shapes) entirely offline.
"""

import argparse
import os


def main(argv=None):
    parser = argparse.ArgumentParser(description="StackGAN text-to-image demo (Gradio)")
    parser.add_argument("--model", help="model folder, train/ checkpoint folder or Hub repo id "
                                        "(default: the bundled Shapes model)")
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", "7860")))
    parser.add_argument("--device", default="auto", help='"cpu", "cuda", ... ("auto": cuda when available)')
    parser.add_argument("--compile", action="store_true",
                        help="torch.compile the generators: faster requests, 10-30 s longer start")
    args = parser.parse_args(argv)
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"  # gradio reads it at import

    from demo import build_demo, launch, warm_up  # first: it imports `spaces` (ZeroGPU) before torch
    import torch
    from stackgan import StackGANPipeline

    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    try:
        pipeline = StackGANPipeline.from_pretrained(args.model, device=device, compile=args.compile)
    except (OSError, ValueError) as error:  # the library's messages say what to pass instead
        parser.error(str(error))
    warm_up(pipeline)
    launch(build_demo(pipeline), host=args.host, port=args.port)


if __name__ == "__main__":
    main()
