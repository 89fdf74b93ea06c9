"""Tools: offline readers of coroscope logs (``coroscope report``, ``coroscope trace``).

They read JSON-lines logs written by any coroscope process (:mod:`._logread`) and import
nothing of the runtime but the record schema (:mod:`coroscope._schema`).
"""
