"""imgjax studio: `python app.py [--host H] [--port P] [--share]`."""

import argparse

from imgjax.studio import build_demo

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--share", action="store_true", help="open a public share link")
    args = parser.parse_args()
    build_demo().queue(default_concurrency_limit=2, max_size=32).launch(
        server_name=args.host, server_port=args.port, share=args.share)
