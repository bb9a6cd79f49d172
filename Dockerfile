# One image for every service: `reintegration serve intake`, `reintegration relay`, ...
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY shared ./shared
COPY services ./services
COPY reintegration ./reintegration
RUN pip install --no-cache-dir .
USER nobody
ENTRYPOINT ["reintegration"]
