"""Progress bars that can be hidden by the caller and, when shown, by TQDM_DISABLE=1."""

from tqdm import tqdm


def progress_bar(iterable=None, shown: bool = True, **kwargs) -> tqdm:
    """A tqdm bar; ``shown=False`` hides it.

    ``disable`` is left unset when the bar is shown, because an explicit ``disable=False``
    would override tqdm's TQDM_DISABLE environment variable (used by the tests and by batch
    jobs that do not want bars in their logs).
    """
    if not shown:
        kwargs["disable"] = True
    return tqdm(iterable, **kwargs)
