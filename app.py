"""imgjax studio: `python app.py [--host H] [--port P] [--share] [--mcp]`.

Thin on purpose: the page is built in imgjax/studio/, each tab's actions live in imgjax/service/.
"""

import argparse
import os

from imgjax.service import start_studio
from imgjax.service.lab import MAX_BUDGET_S as LAB_MAX_SECONDS

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
                        help="interface to listen on (0.0.0.0 to serve your network; Spaces sets it)")
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", 7860)))
    parser.add_argument("--share", action="store_true", help="also open a public *.gradio.live share link")
    parser.add_argument("--mcp", action="store_true",
                        help="also serve the functions as MCP tools (needs: pip install 'gradio[mcp]')")
    parser.add_argument("--lab-runs", type=int, default=1, help="Lab training runs at once (others wait in line)")
    parser.add_argument("--lab-max-seconds", type=float, default=LAB_MAX_SECONDS,
                        help="the longest time budget a visitor may give a Lab run (seconds of training)")
    args = parser.parse_args()
    # The models load and compile in a thread while Gradio is imported: the first answer comes sooner.
    started = start_studio(lab_runs=args.lab_runs, lab_max_seconds=args.lab_max_seconds)
    from imgjax.studio import launch  # noqa: E402 - after the start, on purpose
    launch(host=args.host, port=args.port, share=args.share, mcp=args.mcp, started=started)
