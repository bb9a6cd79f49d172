# One image for every service: `reintegration serve intake`, `reintegration relay`, ...
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY shared ./shared
COPY services ./services
COPY reintegration ./reintegration
RUN pip install --no-cache-dir .
# Mount point of the compose `parties` volume: owned by the image's user, so that the one-shot `parties` service
# (deploy/parties-init.sh) writes the accounts and credentials without root (Docker copies this ownership into an
# empty named volume on its first mount).
RUN mkdir -p /var/lib/reintegration/parties && chown -R 65534:65534 /var/lib/reintegration
USER nobody
ENTRYPOINT ["reintegration"]
