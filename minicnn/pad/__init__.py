"""The digit pad: a local web page where you draw a digit and watch every layer of the CNN answer.

``minicnn pad`` starts it (minicnn/commands/pad.py); server.py serves page.html and the JSON API.
"""
