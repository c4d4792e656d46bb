"""Pictures and text gauges the bot posts: comparison grids, shrunken samples, progress bars."""
