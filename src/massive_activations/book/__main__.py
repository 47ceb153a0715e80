"""``python -m massive_activations.book``: execute the notebooks and build the book."""

import sys

from massive_activations.book.build import main

sys.exit(main())
