"""Launch the idinvert-plugins web app: ``python gradio_app.py [--model NAME] [--port N] [--host H]``.

Serves the bundled ``toyfaces-stylegan2-64`` by default, offline (no share link, analytics off), and prints
the local URL. Without ``--host`` / ``--port`` it listens where ``GRADIO_SERVER_NAME`` / ``GRADIO_SERVER_PORT``
say (Hugging Face Spaces set them), else on 127.0.0.1 at the first free port from 7860.
``python gradio_app.py --help`` lists the options; ``idinvert app`` is the same command.
"""

import os
import sys

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"

from idinvert_plugins.app.launcher import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
