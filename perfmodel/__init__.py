"""perfmodel: empirical performance prediction for CNN inference on low-cost CPU boards.

Data flows one way: zoo -> runners -> collect -> data -> model -> select/report.
A stage never imports a later one.
"""

__version__ = "0.1.0"
