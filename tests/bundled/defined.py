import os


def read_config_file(path):
    with open(path) as f:
        return f.read()


def load_settings(directory):
    path = os.path.join(directory, "settings.ini")
    text = read_
