"""The package's stdlib logging, written to the node's rclpy logger (and so to
``/rosout``, where the take-off sequencer reads a node's reasons)."""

from __future__ import annotations

import logging

from rclpy.node import Node


class _RclpyHandler(logging.Handler):
    def __init__(self, node: Node) -> None:
        super().__init__()
        self._logger = node.get_logger()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            msg = self.format(record)
            if record.levelno >= logging.ERROR:
                self._logger.error(msg)
            elif record.levelno >= logging.WARNING:
                self._logger.warning(msg)
            elif record.levelno >= logging.INFO:
                self._logger.info(msg)
            else:
                self._logger.debug(msg)
        except Exception:  # a log handler must never take the node down
            self.handleError(record)


def bridge_logging(node: Node, logger_name: str = "gps_denied_onboard") -> logging.Logger:
    """Route stdlib logging under ``logger_name`` to the node's rclpy logger."""
    logger = logging.getLogger(logger_name)
    for h in list(logger.handlers):
        if isinstance(h, _RclpyHandler):
            logger.removeHandler(h)
    logger.addHandler(_RclpyHandler(node))
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger
